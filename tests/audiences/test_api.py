"""The seed's audience API: create, list, detail, sync (members), customer file upload, lookalikes."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from audiences.models import Audience, AudienceMember, CustomerFileImport
from audiences.services import customer_file_import_stored
from audiences.sync import audience_sync
from tests.audiences.conftest import email_sha, phone_sha
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

AUDIENCES = "/api/integrations/tiktok-ads/audiences"
SEED_CREATE = {"advertiser_id": "7001", "custom_audience_name": "Cumpărători Anteriori Bilete",
               "audience_type": "CUSTOMER_FILE"}  # fmt: skip


def create(api, body=None, **overrides):
    return api.post(AUDIENCES, {**(body or SEED_CREATE), **overrides}, format="json")


def members(audience_id, state=None) -> set[tuple[str, str]]:
    rows = AudienceMember.objects.filter(audience_id=audience_id)
    if state:
        rows = rows.filter(state=state)
    return set(rows.values_list("id_type", "id_hash"))


def test_seed_body_creates_an_audience_and_its_first_sync_creates_it_at_tiktok(
    management_api, pixel, tiktok, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = create(management_api)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert {key: body[key] for key in ("custom_audience_name", "audience_type", "exclusion", "advertiser_id",
                                       "pixel_id", "tiktok_audience_id", "status", "rule", "lookalike")} == {
        "custom_audience_name": "Cumpărători Anteriori Bilete", "audience_type": "CUSTOMER_FILE", "exclusion": False,
        "advertiser_id": "7001", "pixel_id": "CPIXEL123", "tiktok_audience_id": "", "status": "new", "rule": None,
        "lookalike": None,
    }  # fmt: skip
    assert body["members"] == {"pending_add": 0, "added": 0, "pending_remove": 0, "removed": 0}
    assert len(queued) == 1  # the sync task, sent once the audience is committed

    audience_sync(audience_id=body["id"], trigger="create")

    detail = management_api.get(f"{AUDIENCES}/{body['id']}").json()
    assert detail["status"] == "ready"
    assert tiktok.audiences()[detail["tiktok_audience_id"]]["name"] == "Cumpărători Anteriori Bilete"
    assert [(run["trigger"], run["ok"], run["created_at_tiktok"]) for run in detail["syncs"]] == [
        ("create", True, True)
    ]


def test_rule_and_exclusion_audiences(management_api, pixel):
    campaign = CampaignFactory(pixel=pixel)
    rule = {"event": "CompletePayment", "min_purchases": 2, "min_value": 10000, "campaign_id": campaign.pk,
            "within_days": 30}  # fmt: skip
    response = create(management_api, audience_type="RULE", rule=rule, custom_audience_name="Big buyers")
    assert response.status_code == 201, response.json()
    assert response.json()["rule"] == {"event": "CompletePayment", "goal": "", "min_purchases": 2,
                                       "min_value": 10000, "campaign_id": campaign.pk, "within_days": 30}  # fmt: skip

    exclusion = create(management_api, audience_type="EXCLUSION", custom_audience_name="All buyers").json()
    assert (exclusion["audience_type"], exclusion["exclusion"]) == ("RULE", True)
    assert exclusion["rule"]["event"] == "CompletePayment" and exclusion["rule"]["min_purchases"] == 1
    stored = Audience.objects.get(pk=exclusion["id"])
    assert (stored.kind, stored.is_exclusion) == ("rule", True)

    file_exclusion = create(management_api, exclusion=True, custom_audience_name="Do not target").json()
    assert (file_exclusion["audience_type"], file_exclusion["exclusion"]) == ("CUSTOMER_FILE", True)


@pytest.mark.parametrize(
    ("overrides", "status", "field"),
    [
        ({"advertiser_id": "999"}, 404, "advertiser_id"),
        ({"pixel_id": "NOPE"}, 404, "pixel_id"),
        ({"custom_audience_name": "x" * 129}, 400, "custom_audience_name"),
        ({"audience_type": "LOOKALIKE"}, 400, "audience_type"),
        ({"rule": {"min_purchases": 2}}, 400, "rule"),
        ({"audience_type": "RULE", "rule": {"min_purchases": 0}}, 400, "rule.min_purchases"),
        ({"audience_type": "RULE", "rule": {"min_value": "50.00"}}, 400, "rule.min_value"),
        ({"audience_type": "RULE", "rule": {"campaign_id": 99999}}, 404, "rule.campaign_id"),
        ({"audience_type": "RULE", "rule": {"event": "AddToWishlist"}}, 400, "rule.event"),
    ],
)
def test_create_errors_name_the_field(management_api, pixel, overrides, status, field):
    response = create(management_api, **overrides)

    assert response.status_code == status, response.json()
    assert list(response.json()["fields"]) == [field]
    assert Audience.objects.count() == 0


def test_keys_and_scopes(bot_api, pixel):
    assert APIClient().get(AUDIENCES).status_code == 401
    assert bot_api.get(AUDIENCES).status_code == 403
    assert bot_api.post(AUDIENCES, SEED_CREATE, format="json").status_code == 403


def test_list_shows_member_counts_by_state(management_api, pixel):
    first = create(management_api, custom_audience_name="A").json()
    second = create(management_api, custom_audience_name="B", audience_type="RULE").json()
    hashes = [email_sha(f"p{n}@example.com") for n in range(4)]
    for index, state in enumerate(["pending_add", "added", "added", "removed"]):
        AudienceMember.objects.create(audience_id=first["id"], id_type="EMAIL_SHA256", id_hash=hashes[index],
                                      state=state, changed_at="2025-01-01T00:00:00Z")  # fmt: skip

    listing = management_api.get(AUDIENCES).json()

    assert listing["count"] == 2
    by_id = {row["id"]: row for row in listing["results"]}
    assert by_id[first["id"]]["members"] == {"pending_add": 1, "added": 2, "pending_remove": 0, "removed": 1}
    assert by_id[second["id"]]["members"] == {"pending_add": 0, "added": 0, "pending_remove": 0, "removed": 0}
    rules = management_api.get(AUDIENCES, {"audience_type": "RULE"}).json()
    assert [row["id"] for row in rules["results"]] == [second["id"]]
    Audience.objects.filter(pk=first["id"]).update(is_exclusion=True)
    exclusions = management_api.get(AUDIENCES, {"exclusion": "true"}).json()
    assert [row["id"] for row in exclusions["results"]] == [first["id"]]
    assert management_api.get(f"{AUDIENCES}/999999").status_code == 404


def test_seed_sync_body_appends_hashes_and_raw_values_hashed_here(
    management_api, pixel, django_capture_on_commit_callbacks
):
    audience = create(management_api).json()
    body = {
        "action": "APPEND",
        "id_schema": ["EMAIL_SHA256", "PHONE_SHA256"],
        "members": [
            [email_sha("ana@example.com"), phone_sha("+40721234567")],
            ["Bob@Example.com", None],  # raw: hashed on arrival, never stored
            ["", "+40 721 234 568"],
            [email_sha("ana@example.com").upper(), ""],  # the same as row 1
        ],
    }
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = management_api.post(f"{AUDIENCES}/{audience['id']}/sync", body, format="json")

    assert response.status_code == 202, response.json()
    assert response.json() == {"audience_id": audience["id"], "action": "APPEND", "rows": 4, "ids": 5, "changed": 4,
                               "unchanged": 1, "sync_queued": True}  # fmt: skip
    assert len(queued) == 1
    assert members(audience["id"], "pending_add") == {
        ("EMAIL_SHA256", email_sha("ana@example.com")),
        ("EMAIL_SHA256", email_sha("bob@example.com")),
        ("PHONE_SHA256", phone_sha("+40721234567")),
        ("PHONE_SHA256", phone_sha("+40721234568")),
    }

    AudienceMember.objects.filter(audience_id=audience["id"]).update(state="added")
    remove = {"action": "REMOVE", "id_schema": ["EMAIL_SHA256"], "members": [[email_sha("bob@example.com")]]}
    answer = management_api.post(f"{AUDIENCES}/{audience['id']}/sync", remove, format="json").json()
    assert (answer["changed"], answer["unchanged"]) == (1, 0)
    assert members(audience["id"], "pending_remove") == {("EMAIL_SHA256", email_sha("bob@example.com"))}


def test_sync_without_members_just_queues_a_sync(management_api, pixel, django_capture_on_commit_callbacks):
    audience = create(management_api, audience_type="RULE").json()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = management_api.post(f"{AUDIENCES}/{audience['id']}/sync", {}, format="json")
    assert response.status_code == 202
    assert response.json()["ids"] == 0 and len(queued) == 1


def test_sync_errors_name_the_member_and_never_echo_it(management_api, pixel):
    audience = create(management_api).json()
    url = f"{AUDIENCES}/{audience['id']}/sync"
    body = {"action": "APPEND", "id_schema": ["EMAIL_SHA256", "PHONE_SHA256"],
            "members": [[email_sha("ok@example.com"), None], ["secret-person", None], ["a@b.co"], [None, None],
                        [None, "+1 555"]]}  # fmt: skip

    response = management_api.post(url, body, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "members[1][0]": ["Not a SHA-256 hex digest or a valid email address."],
        "members[2]": ["Has 1 values; id_schema has 2."],
        "members[3]": ["No id in this row."],
        "members[4][1]": ["Not a SHA-256 hex digest or a valid phone number (E.164, e.g. +40721234567)."],
    }
    assert "secret-person" not in response.content.decode()
    assert AudienceMember.objects.count() == 0
    bad_action = management_api.post(url, {**body, "action": "REPLACE"}, format="json")
    assert list(bad_action.json()["fields"]) == ["action"]

    rule = create(management_api, audience_type="RULE").json()
    refused = management_api.post(f"{AUDIENCES}/{rule['id']}/sync", {"members": [[email_sha("x@y.zz"), None]]},
                                  format="json")  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["fields"] == {"members": ["A rule audience's members come from its rule; change the rule "
                                                    "instead."]}  # fmt: skip


def test_customer_file_upload_answers_with_the_import_report(management_api, pixel):
    audience = create(management_api).json()
    csv_file = SimpleUploadedFile("buyers.csv", b"email,phone\nana@example.com,+40721234567\nnope,\n")

    response = management_api.post(f"{AUDIENCES}/{audience['id']}/customer-file", {"file": csv_file},
                                   format="multipart")  # fmt: skip

    assert response.status_code == 201, response.json()
    report = response.json()
    assert {key: report[key] for key in ("filename", "mode", "status", "rows_total", "rows_ok", "rows_bad",
                                         "ids_changed", "errors_total", "errors")} == {
        "filename": "buyers.csv", "mode": "append", "status": "done", "rows_total": 2, "rows_ok": 1, "rows_bad": 1,
        "ids_changed": 2, "errors_total": 1,
        "errors": [{"line": 3, "column": "email", "error": "not an email address"}],
    }  # fmt: skip
    detail = management_api.get(f"{AUDIENCES}/{audience['id']}").json()
    assert detail["members"]["pending_add"] == 2
    assert detail["last_import"]["id"] == report["id"]


def test_an_upload_over_the_in_memory_size_is_read_from_its_temporary_file(management_api, pixel, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # Django spools larger uploads to a temporary file
    content = b"email\n" + b"".join(b"person%d@example.com\n" % n for n in range(500))
    audience = create(management_api).json()

    response = management_api.post(f"{AUDIENCES}/{audience['id']}/customer-file",
                                   {"file": SimpleUploadedFile("mid.csv", content)}, format="multipart")  # fmt: skip

    assert response.status_code == 201, response.json()
    assert (response.json()["rows_ok"], response.json()["ids_changed"]) == (500, 500)


def test_a_large_upload_is_streamed_to_disk_and_imported_by_a_worker(
    management_api, pixel, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.AUDIENCE_UPLOAD_DIR = tmp_path
    # Over Django's in-memory upload size and over the JSON body limit: neither applies to file parts.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    settings.AUDIENCE_IMPORT_INLINE_MAX_BYTES = 1024 * 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 512 * 1024  # API_MAX_BODY_BYTES
    rows = 60_000
    content = b"email\n" + b"".join(b"person%d@example.com\n" % n for n in range(rows))
    assert len(content) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    audience = create(management_api).json()

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = management_api.post(f"{AUDIENCES}/{audience['id']}/customer-file",
                                       {"file": SimpleUploadedFile("big.csv", content), "mode": "append"},
                                       format="multipart")  # fmt: skip

    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "queued"
    assert len(queued) == 1
    stored = list(tmp_path.iterdir())
    assert len(stored) == 1 and stored[0].stat().st_mode & 0o777 == 0o600

    record = customer_file_import_stored(import_id=response.json()["id"])  # what the task runs

    assert (record.status, record.rows_ok, record.ids_changed) == ("done", rows, rows)
    assert list(tmp_path.iterdir()) == []
    assert CustomerFileImport.objects.get().stored_path == ""
    assert customer_file_import_stored(import_id=record.pk) is None  # a redelivered task does nothing


def test_customer_file_errors(management_api, pixel):
    audience = create(management_api).json()
    url = f"{AUDIENCES}/{audience['id']}/customer-file"
    assert list(management_api.post(url, {}, format="multipart").json()["fields"]) == ["file"]
    bad_mode = {"file": SimpleUploadedFile("a.csv", b"email\n"), "mode": "merge"}
    assert list(management_api.post(url, bad_mode, format="multipart").json()["fields"]) == ["mode"]
    rule = create(management_api, audience_type="RULE").json()
    refused = management_api.post(f"{AUDIENCES}/{rule['id']}/customer-file",
                                  {"file": SimpleUploadedFile("a.csv", b"email\n")}, format="multipart")  # fmt: skip
    assert refused.status_code == 400 and list(refused.json()["fields"]) == ["file"]


def test_lookalikes_of_a_synced_audience(management_api, pixel, tiktok, django_capture_on_commit_callbacks):
    source = create(management_api).json()
    url = f"{AUDIENCES}/{source['id']}/lookalikes"
    body = {"name": "Buyers LAL", "audience_size": "BROAD", "location_ids": ["6252001", "798544"]}

    not_yet = management_api.post(url, body, format="json")
    assert not_yet.status_code == 400
    assert not_yet.json()["fields"] == {"audience_id": ["The source audience is not at TikTok yet: sync it first."]}

    audience_sync(audience_id=source["id"])
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = management_api.post(url, body, format="json")

    assert response.status_code == 202, response.json()
    lookalike = response.json()
    assert (lookalike["audience_type"], lookalike["status"], len(queued)) == ("LOOKALIKE", "new", 1)
    assert lookalike["lookalike"] == {"source_audience_id": source["id"], "audience_size": "BROAD",
                                      "location_ids": ["6252001", "798544"], "include_source": False}  # fmt: skip
    of_lookalike = management_api.post(f"{AUDIENCES}/{lookalike['id']}/lookalikes", body, format="json")
    assert of_lookalike.status_code == 400
    assert list(of_lookalike.json()["fields"]) == ["audience_id"]
    bad = management_api.post(url, {"name": "x", "audience_size": "HUGE", "location_ids": ["US"]}, format="json")
    assert sorted(bad.json()["fields"]) == ["audience_size", "location_ids[0]"]
