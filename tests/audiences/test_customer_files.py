"""Customer files: CSV in, hashed members out, every bad value reported by line; raw values never stored."""

import io
import json

import phonenumbers
import pytest
from django.db import connection
from phonenumbers import PhoneNumberType

from audiences import services
from audiences.customer_files import FileProblem, phone_hash, read_ahead
from audiences.models import Audience, AudienceMember, CustomerFileImport
from audiences.services import audience_create, customer_file_import
from tests.audiences.conftest import email_sha, phone_sha
from tiktok_ads.hashing import sha256_phone

pytestmark = pytest.mark.django_db

PRE_HASHED = email_sha("hashed@example.com")


@pytest.fixture
def customers(pixel) -> Audience:
    return audience_create(pixel=pixel, name="Customers", kind=Audience.Kind.CUSTOMER_FILE)


def upload(audience, text: str | bytes, **options) -> CustomerFileImport:
    raw = text.encode() if isinstance(text, str) else text
    return customer_file_import(audience=audience, binary_file=io.BytesIO(raw), filename="customers.csv", **options)


def members(audience, state="pending_add") -> set[tuple[str, str]]:
    return set(AudienceMember.objects.filter(audience=audience, state=state).values_list("id_type", "id_hash"))


GOOD_BAD_AND_DUPLICATES = (
    "E-mail,Mobile,first_name\r\n"  # line 1: common names for the columns
    "ana@example.com,+40 721 234 567,Ana\r\n"  # 2: good email, good phone (spaces are fine)
    " Bob@Example.COM ,,Bob\r\n"  # 3: good email (trimmed, lower-cased)
    "not-an-email,+40721234568,Cleo\r\n"  # 4: bad email, good phone: the row is kept
    "dan@example,12,Dan\r\n"  # 5: bad email and bad phone: a bad row
    ",,Eve\r\n"  # 6: nothing to match on: a bad row
    "\r\n"  # 7: blank line, not a row
    "ANA@example.com,+40721234567,Ana again\r\n"  # 8: duplicate of line 2 (both values)
    f"{PRE_HASHED.upper()},,Already hashed\r\n"  # 9: a SHA-256 in the email column is kept, not re-hashed
    '"fay@example.com","+40 (721) 234-569","Fay, with a comma"\r\n'  # 10: quoting
)


def test_good_bad_and_duplicate_rows_give_the_right_members_and_a_precise_report(customers):
    report = upload(customers, GOOD_BAD_AND_DUPLICATES)

    assert report.status == "done"
    assert report.columns == {"E-mail": "EMAIL_SHA256", "Mobile": "PHONE_SHA256"}
    assert (report.rows_total, report.rows_ok, report.rows_bad) == (8, 6, 2)
    assert (report.ids_total, report.ids_changed, report.duplicates) == (9, 7, 2)
    assert report.errors_total == 4
    assert report.errors == [
        {"line": 4, "column": "E-mail", "error": "not an email address"},
        {"line": 5, "column": "E-mail", "error": "not an email address"},
        {"line": 5, "column": "Mobile", "error": "not a valid phone number"},
        {"line": 6, "column": "row", "error": "no email or phone in this row"},
    ]
    assert members(customers) == {
        ("EMAIL_SHA256", email_sha("ana@example.com")),
        ("EMAIL_SHA256", email_sha("bob@example.com")),
        ("EMAIL_SHA256", PRE_HASHED),
        ("EMAIL_SHA256", email_sha("fay@example.com")),
        ("PHONE_SHA256", phone_sha("+40721234567")),
        ("PHONE_SHA256", phone_sha("+40721234568")),
        ("PHONE_SHA256", phone_sha("+40721234569")),
    }


def test_raw_emails_and_phones_never_reach_the_database(customers):
    upload(customers, GOOD_BAD_AND_DUPLICATES)

    dumped = []
    with connection.cursor() as cursor:
        for table in ("audiences_audiencemember", "audiences_customerfileimport", "audiences_audience"):
            cursor.execute(f"SELECT * FROM {table}")
            dumped.append(json.dumps(cursor.fetchall(), default=str))
    text = " ".join(dumped).lower()
    for raw in ("ana@example.com", "bob@example.com", "not-an-email", "dan@example", "721 234", "40721234567",
                "fay@example.com"):  # fmt: skip
        assert raw not in text


def test_a_second_upload_adds_only_new_people(customers):
    upload(customers, "email\nana@example.com\nbob@example.com\n")
    AudienceMember.objects.filter(audience=customers).update(state="added")

    report = upload(customers, "email\nbob@example.com\ncleo@example.com\n")

    assert (report.ids_total, report.ids_changed, report.duplicates) == (2, 1, 1)
    assert members(customers) == {("EMAIL_SHA256", email_sha("cleo@example.com"))}


def test_hashed_columns_semicolons_bom_and_multiline_quotes(customers):
    text = (
        "\ufeffphone_sha256;email_sha256;note\n"
        f'{phone_sha("+40721234567")};;"two\nlines"\n'  # lines 2-3
        f";{PRE_HASHED};x\n"  # line 4
        "+40721234567;nothash;y\n"  # line 5: hashed columns must hold hashes
    )

    report = upload(customers, text)

    assert report.columns == {"phone_sha256": "PHONE_SHA256 (hashed)", "email_sha256": "EMAIL_SHA256 (hashed)"}
    assert members(customers) == {("PHONE_SHA256", phone_sha("+40721234567")), ("EMAIL_SHA256", PRE_HASHED)}
    assert report.errors == [
        {"line": 5, "column": "phone_sha256", "error": "not a SHA-256 hex digest (64 characters 0-9 a-f)"},
        {"line": 5, "column": "email_sha256", "error": "not a SHA-256 hex digest (64 characters 0-9 a-f)"},
    ]


def test_phones_without_a_country_code_need_a_region(customers):
    report = upload(customers, "phone\n0721 234 567\n", default_region="ro")

    assert report.errors == []
    assert members(customers) == {("PHONE_SHA256", phone_sha("+40721234567"))}


def test_a_file_without_a_usable_header_imports_nothing(customers):
    report = upload(customers, "name,city\nAna,Cluj\n")

    assert report.status == "failed"
    assert report.message == (
        "Nothing imported: line 1: no email or phone column in the header (name, city); name them email, phone, "
        "email_sha256 or phone_sha256"
    )
    assert AudienceMember.objects.count() == 0


def test_a_broken_csv_imports_nothing_and_names_the_line(customers):
    rows = "".join(f"p{n}@example.com\n" for n in range(5))
    report = upload(customers, "email\n" + rows + '"' + "x" * 200_000 + "\n")

    assert report.status == "failed"
    assert report.message.startswith("Nothing imported: line 7: broken CSV (field larger than field limit")
    assert AudienceMember.objects.count() == 0


def test_bytes_that_are_not_utf8_are_reported_where_they_matter(customers):
    report = upload(customers, b"email,name\nana@example.com,Ren\xe9\njos\xe9@example.com,Jose\n")

    assert members(customers) == {("EMAIL_SHA256", email_sha("ana@example.com"))}
    assert report.errors == [{"line": 3, "column": "email", "error": "not UTF-8 text (save the file as UTF-8)"}]


def test_remove_mode_takes_people_out(customers):
    upload(customers, "email\nana@example.com\nbob@example.com\n")
    AudienceMember.objects.filter(audience=customers).update(state="added")

    report = upload(customers, "email\nbob@example.com\nnobody@example.com\n", mode="remove")

    assert (report.ids_changed, report.duplicates) == (1, 1)
    assert members(customers, "pending_remove") == {("EMAIL_SHA256", email_sha("bob@example.com"))}
    assert members(customers, "added") == {("EMAIL_SHA256", email_sha("ana@example.com"))}


def test_replace_mode_keeps_only_the_people_in_the_file(customers):
    upload(customers, "email\nana@example.com\nbob@example.com\n")
    AudienceMember.objects.filter(audience=customers).update(state="added")

    report = upload(customers, "email\nbob@example.com\ncleo@example.com\n", mode="replace")

    assert (report.ids_changed, report.ids_removed) == (1, 1)
    assert members(customers, "added") == {("EMAIL_SHA256", email_sha("bob@example.com"))}
    assert members(customers, "pending_add") == {("EMAIL_SHA256", email_sha("cleo@example.com"))}
    assert members(customers, "pending_remove") == {("EMAIL_SHA256", email_sha("ana@example.com"))}

    empty = upload(customers, "email\nnot-an-email\n", mode="replace")
    assert empty.ids_removed == 0 and "nobody was replaced" in empty.message


def test_the_error_report_keeps_the_first_thousand_problems_and_counts_all(customers):
    text = "email\n" + "bad\n" * 1500 + "ok@example.com\n"

    report = upload(customers, text)

    assert (report.rows_total, report.rows_ok, report.rows_bad, report.errors_total) == (1501, 1, 1500, 1500)
    assert len(report.errors) == 1000
    assert report.errors[0]["line"] == 2 and report.errors[-1]["line"] == 1001


def _region_examples() -> set[str]:
    numbers = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for number_type in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE,
                            PhoneNumberType.VOIP, PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.UAN):  # fmt: skip
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                numbers.add(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    return numbers


def test_the_fast_phone_path_agrees_with_the_reference_hashing():
    """phone_hash skips phonenumbers' clean-up for E.164 input; it must answer exactly as sha256_phone."""

    def answer(function, value, region):
        try:
            return function(value, region)
        except ValueError:
            return "invalid"

    values = set()
    for e164 in _region_examples():
        digits = e164[1:]
        values |= {e164, digits, e164[:-1], e164 + "5", "00" + digits}
        values |= {"+" + digits[:cut] + "0" + digits[cut:] for cut in (1, 2, 3)}  # a trunk 0 after the code
    assert len(values) > 3000
    for value in values:
        for region in (None, "RO", "GB", "IT"):
            assert answer(phone_hash, value, region) == answer(sha256_phone, value, region), (value, region)


@pytest.mark.parametrize("value", ["ana@example.com", "+40721234567", "A" * 64, "a" * 63, "g" * 64])
def test_the_database_itself_refuses_anything_but_a_lowercase_sha256(customers, value):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        AudienceMember.objects.create(audience=customers, id_type="EMAIL_SHA256", id_hash=value,
                                      changed_at="2025-01-01T00:00:00Z")  # fmt: skip
    AudienceMember.objects.create(audience=customers, id_type="EMAIL_SHA256", id_hash="0" * 64,
                                  changed_at="2025-01-01T00:00:00Z")  # fmt: skip


# --- large files: inserted chunk by chunk while the rest is read -----------------------------------


@pytest.fixture
def chunks_of_two(monkeypatch):
    """Files inserted two ids at a time."""
    monkeypatch.setattr(services, "COPY_BLOCK", 1)
    monkeypatch.setattr(services, "FILE_CHUNK_IDS", 2)


def test_a_file_inserted_in_chunks_gives_the_same_members_and_report(customers, chunks_of_two):
    test_good_bad_and_duplicate_rows_give_the_right_members_and_a_precise_report(customers)


def test_people_coming_back_are_counted_once_however_the_file_is_cut(customers, chunks_of_two):
    upload(customers, "email\nana@example.com\nbob@example.com\ncleo@example.com\n")
    AudienceMember.objects.filter(audience=customers).update(state="removed")
    AudienceMember.objects.filter(audience=customers, id_hash=email_sha("cleo@example.com")).update(state="added")

    text = "email\nx@example.com\nana@example.com\ny@example.com\nbob@example.com\nana@example.com\ncleo@example.com\n"
    report = upload(customers, text)

    assert (report.ids_total, report.ids_changed, report.duplicates) == (6, 4, 2)  # x, y new; ana, bob back
    assert members(customers) == {
        ("EMAIL_SHA256", email_sha(email)) for email in ("x@example.com", "y@example.com", "ana@example.com",
                                                          "bob@example.com")
    }  # fmt: skip


def test_replace_in_chunks_keeps_only_the_people_in_the_file(customers, chunks_of_two):
    test_replace_mode_keeps_only_the_people_in_the_file(customers)


def test_a_file_broken_after_some_chunks_were_inserted_imports_nothing(customers, chunks_of_two):
    test_a_broken_csv_imports_nothing_and_names_the_line(customers)


def test_read_ahead_hands_over_the_readers_error_and_stops_the_reader():
    read = []

    def items():
        for n in range(5):
            read.append(n)
            yield n
        raise FileProblem("line 7: broken")

    with pytest.raises(FileProblem, match="line 7"), read_ahead(items(), 2) as chunks:
        assert next(chunks) == [0, 1]
        list(chunks)
    assert read == [0, 1, 2, 3, 4]

    endless = iter(range(10**9))
    with read_ahead(endless, 3) as chunks:
        assert next(chunks) == [0, 1, 2]
    assert next(endless) < 20  # the reader stopped soon after the caller left
