"""Reading customer files: CSV in, (id type, SHA-256) out, with every bad value reported by line.

Pure Python, no database. The file is read row by row through the `csv` module, so memory stays flat
however long it is; a raw value lives only in the local variables of the row being read. Problems
never quote the value (the report is stored, raw values must not be).
"""

import contextlib
import csv
import hashlib
import io
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber
from phonenumbers.phonenumberutil import (
    COUNTRY_CODE_TO_REGION_CODE,
    _maybe_strip_national_prefix_carrier_code,
    region_code_for_country_code,
)

from tiktok_ads.hashing import is_sha256_hex, normalize_email, sha256_phone

EMAIL = "EMAIL_SHA256"
PHONE = "PHONE_SHA256"
MAX_ERRORS_KEPT = 1000
# A field longer than this is not an email or a phone: csv's default limit (128 KB) would let a broken
# quote swallow the rest of the file into one field before saying so.
MAX_FIELD_CHARS = 4096

# Header names (lower-cased, spaces, dots and dashes as "_") and what they hold. "raw" columns are
# normalised and hashed; "hashed" columns must already be SHA-256 hex.
HEADER_ALIASES = {
    ("email", "raw"): {"email", "e_mail", "mail", "email_address", "emailaddress", "e_mail_address", "email_addr"},
    ("phone", "raw"): {"phone", "phone_number", "phonenumber", "mobile", "mobile_phone", "mobile_number",
                       "mobilephone", "cell", "cellphone", "cell_phone", "tel", "telephone", "msisdn", "whatsapp"},
    ("email", "hashed"): {"email_sha256", "sha256_email", "email_hash", "hashed_email", "email_sha_256",
                          "sha256_email_address", "emailsha256"},
    ("phone", "hashed"): {"phone_sha256", "sha256_phone", "phone_hash", "hashed_phone", "phone_sha_256",
                          "sha256_phone_number", "phonesha256", "mobile_sha256"},
}  # fmt: skip
_ALIAS_TO_COLUMN = {alias: kind for kind, aliases in HEADER_ALIASES.items() for alias in aliases}
DELIMITERS = (",", ";", "\t", "|")
_EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_E164 = re.compile(r"\+[1-9][0-9]{6,16}")


class FileProblem(Exception):
    """The file as a whole cannot be read (no usable header, broken CSV); names the line."""


@dataclass(frozen=True)
class Column:
    index: int
    header: str
    id_type: str  # EMAIL_SHA256 | PHONE_SHA256
    hashed: bool  # the column already holds SHA-256 hex


@dataclass
class ReadReport:
    """Counts of one file read; `errors` keeps the first MAX_ERRORS_KEPT problems."""

    columns: dict[str, str] = field(default_factory=dict)
    rows_total: int = 0
    rows_ok: int = 0
    rows_bad: int = 0
    ids_total: int = 0
    errors_total: int = 0
    errors: list[dict] = field(default_factory=list)

    def problem(self, line: int, column: str, error: str) -> None:
        self.errors_total += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"line": line, "column": column, "error": error})


def normalise_header(name: str) -> str:
    return re.sub(r"[\s.\-]+", "_", name.strip().lower()).strip("_")


def detect_columns(header: list[str]) -> list[Column]:
    columns = []
    for index, name in enumerate(header):
        kind = _ALIAS_TO_COLUMN.get(normalise_header(name))
        if kind is not None:
            what, form = kind
            columns.append(Column(index, name.strip(), EMAIL if what == "email" else PHONE, form == "hashed"))
    return columns


def sniff_delimiter(first_line: str) -> str:
    counts = {delimiter: first_line.count(delimiter) for delimiter in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


# --- values -------------------------------------------------------------------------------------


def email_hash(value: str) -> str:
    """SHA-256 of the trimmed, lower-cased email; 64-hex input is kept (lower-cased), never re-hashed."""
    if is_sha256_hex(value):
        return value.lower()
    email = normalize_email(value)
    if not _EMAIL_SHAPE.fullmatch(email):
        raise ValueError("not an email address")
    return hashlib.sha256(email.encode()).hexdigest()


def phone_hash(value: str, default_region: str | None = None) -> str:
    """SHA-256 of the E.164 number, exactly as tiktok_ads.hashing.sha256_phone gives it, faster.

    phonenumbers.parse spends most of its ~40 µs on clean-up that a number already written in E.164
    ("+40721234567") does not need; for those, the same steps are taken directly (country code, no
    national prefix to strip, no leading zero) and only the validity check is left, ~3x faster. Any
    other form, or any doubt, goes through sha256_phone itself. tests/audiences/test_customer_files.py
    checks both give the same answer for every region's example numbers.
    """
    text = value.strip()
    if is_sha256_hex(text):
        return text.lower()
    if text and default_region is None and text[0].isdigit() and not text.startswith("00"):
        text = "+" + text  # as normalize_phone reads bare digits without a region
    e164 = _e164_if_valid(text) if _E164.fullmatch(text) else None
    if e164 is None:
        try:
            return sha256_phone(value, default_region)
        except ValueError:
            raise ValueError("not a valid phone number") from None
    return hashlib.sha256(e164.encode()).hexdigest()


def _e164_if_valid(text: str) -> str | None:
    digits = text[1:]
    for length in (1, 2, 3):
        country_code = int(digits[:length])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[length:]
    if len(national) < 2 or national[0] == "0":
        return None  # too short, or Italian-style leading zeros: parse() knows those rules
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, region_code_for_country_code(country_code)
    )
    if metadata is None:
        return None
    _, _, had_prefix = _maybe_strip_national_prefix_carrier_code(national, metadata)
    if had_prefix:
        return None  # parse() might strip a national prefix here: let it decide
    number = PhoneNumber(country_code=country_code, national_number=int(national))
    return text if phonenumbers.is_valid_number(number) else None


# --- the file -----------------------------------------------------------------------------------


def text_stream(binary_file) -> io.TextIOWrapper:
    """UTF-8 text (a BOM is skipped); undecodable bytes become U+FFFD and are reported where they matter."""
    return io.TextIOWrapper(binary_file, encoding="utf-8-sig", errors="replace", newline="")


def read_ids(text_file, report: ReadReport, *, default_region: str | None = None) -> Iterator[tuple[str, str]]:
    """Yield (id type, SHA-256 hex) for every valid value, row by row; fill `report` as it goes.

    Raises FileProblem when the header names no email or phone column, or the CSV is broken.
    A row counts as ok when it gives at least one id; each bad value is one problem with its line.
    """
    first_line = text_file.readline()
    if not first_line.strip():
        raise FileProblem("line 1: the file is empty or does not start with a header row")
    delimiter = sniff_delimiter(first_line)
    header = next(csv.reader([first_line], delimiter=delimiter))
    columns = detect_columns(header)
    if not columns:
        names = ", ".join(name.strip() for name in header[:10] if name.strip())
        raise FileProblem(
            f"line 1: no email or phone column in the header ({names or 'nothing'}); name them email, phone, "
            "email_sha256 or phone_sha256"
        )
    report.columns = {column.header: f"{column.id_type}{' (hashed)' if column.hashed else ''}" for column in columns}
    reader = csv.reader(text_file, delimiter=delimiter)
    while True:
        # reader.line_num counts the lines after the header, so a row starts 2 lines after the last one read.
        start_line = reader.line_num + 2
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileProblem(f"line {reader.line_num + 1}: broken CSV ({exc})") from None
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not rows
        report.rows_total += 1
        found = 0
        given = 0
        for column in columns:
            value = row[column.index].strip() if column.index < len(row) else ""
            if not value:
                continue
            given += 1
            id_hash = _hash_value(value, column, default_region, report, start_line)
            if id_hash is not None:
                found += 1
                yield column.id_type, id_hash
        if found:
            report.rows_ok += 1
            report.ids_total += found
        else:
            report.rows_bad += 1
            if not given:
                report.problem(start_line, "row", "no email or phone in this row")


def _hash_value(value: str, column: Column, default_region, report: ReadReport, line: int) -> str | None:
    if len(value) > MAX_FIELD_CHARS:
        report.problem(line, column.header, "value too long")
        return None
    if "\ufffd" in value:
        report.problem(line, column.header, "not UTF-8 text (save the file as UTF-8)")
        return None
    if column.hashed:
        if not is_sha256_hex(value):
            report.problem(line, column.header, "not a SHA-256 hex digest (64 characters 0-9 a-f)")
            return None
        return value.lower()
    try:
        if column.id_type == EMAIL:
            return email_hash(value)
        return phone_hash(value, default_region)
    except ValueError as exc:
        report.problem(line, column.header, str(exc))
        return None


# --- reading ahead ------------------------------------------------------------------------------

_END = object()


class _ReaderFailed:
    def __init__(self, error: BaseException):
        self.error = error


@contextlib.contextmanager
def read_ahead(items: Iterable, size: int) -> Iterator[Iterator[list]]:
    """Lists of `size` items (the last one shorter), made by a thread while the caller uses the previous one.

    Reading and hashing a file is Python's work, inserting it PostgreSQL's: this way they overlap. At most
    two lists wait besides the one being filled, so memory stays bounded. An exception in the reader is
    raised in the caller; leaving the block stops the reader and waits for it, whatever happened.
    """
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                ready.put(item, timeout=0.1)
                return True
        return False

    def produce() -> None:
        try:
            chunk = []
            for item in items:
                chunk.append(item)
                if len(chunk) >= size:
                    if not put(chunk):
                        return
                    chunk = []
            if chunk and not put(chunk):
                return
            put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the caller, raised there
            put(_ReaderFailed(error))

    def consume() -> Iterator[list]:
        while (item := ready.get()) is not _END:
            if isinstance(item, _ReaderFailed):
                raise item.error
            yield item

    reader = threading.Thread(target=produce, name="customer-file-reader", daemon=True)
    reader.start()
    try:
        yield consume()
    finally:
        stop.set()
        reader.join()
