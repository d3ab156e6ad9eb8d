"""The marketers' audience pages: list with members by state, change page, CSV upload, actions."""

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile

from audiences.models import Audience, AudienceMember, AudienceSync, CustomerFileImport
from audiences.services import RuleParams, audience_create
from tests.audiences.conftest import email_sha

pytestmark = pytest.mark.django_db

AUDIENCES = "/admin/audiences/audience/"


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(admin_client, action: str, audiences):
    return admin_client.post(AUDIENCES, {"action": action, "_selected_action": [a.pk for a in audiences]},
                             follow=True)  # fmt: skip


@pytest.fixture
def customers(pixel) -> Audience:
    return audience_create(pixel=pixel, name="Customers", kind=Audience.Kind.CUSTOMER_FILE)


@pytest.fixture
def buyers(pixel) -> Audience:
    return audience_create(pixel=pixel, name="Buyers", kind=Audience.Kind.RULE, rule=RuleParams(), is_exclusion=True)


def test_upload_a_customer_file_then_see_the_report_with_line_numbers(admin_client, customers):
    upload = f"{AUDIENCES}{customers.pk}/customer-file/"
    assert "Upload a customer file" in admin_client.get(f"{AUDIENCES}{customers.pk}/change/").content.decode()
    assert admin_client.get(upload).status_code == 200

    response = admin_client.post(upload, {
        "file": SimpleUploadedFile("list.csv", b"email,phone\nana@example.com,+40721234567\nbad-email,\n"),
        "mode": "append", "default_region": "",
    }, follow=True)  # fmt: skip

    assert response.status_code == 200
    assert messages_of(response) == [
        "list.csv: 1 of 2 rows imported, 1 bad, 2 members changed, 0 duplicates; 1 problems, by line below."
    ]
    page = response.content.decode()
    assert "<td>3</td><td>email</td><td>not an email address</td>" in page
    assert "0 added · 2 to add · 0 to remove · 0 removed" in page
    assert CustomerFileImport.objects.get().rows_ok == 1
    assert "bad-email" not in page


def test_list_shows_kind_members_and_last_sync(admin_client, tiktok, customers, buyers):
    AudienceMember.objects.create(audience=customers, id_type="EMAIL_SHA256", id_hash=email_sha("a@b.co"),
                                  state="added", changed_at="2025-01-01T00:00:00Z")  # fmt: skip
    AudienceSync.objects.create(audience=customers, trigger="beat", started_at="2025-01-01T00:00:00Z", ok=False,
                                message="HTTP 503 retryable")  # fmt: skip

    page = admin_client.get(AUDIENCES).content.decode()

    assert "Customers" in page and "Buyers" in page
    assert "+0 / −0" in page and "failed" in page and "HTTP 503 retryable" in page and "never" in page


def test_sync_now_sends_to_tiktok_and_says_what_happened(admin_client, tiktok, buyers, buy):
    buy("ana@example.com", tx="order-1")

    response = run_action(admin_client, "sync_now", [buyers])

    assert messages_of(response) == ["Buyers: 1 added, 0 removed at TikTok in 2 request(s)."]
    buyers.refresh_from_db()
    assert tiktok.audience_members(buyers.tiktok_audience_id) == {"EMAIL_SHA256": {email_sha("ana@example.com")}}
    page = admin_client.get(f"{AUDIENCES}{buyers.pk}/change/").content.decode()
    assert "1 added · 0 to add" in page and "<td>admin</td><td>ok</td>" in page


def test_refresh_rule_now_recomputes_without_sending(admin_client, tiktok, buyers, customers, buy):
    buy("ana@example.com", tx="order-1")

    response = run_action(admin_client, "refresh_rule_now", [buyers, customers])

    assert messages_of(response) == [
        "Customers: not a rule audience.",
        "Buyers: 1 to add, 0 leaving; the next sync sends them.",
    ]
    assert AudienceMember.objects.filter(audience=buyers, state="pending_add").count() == 1
    assert tiktok.requests == []


def test_add_a_rule_audience_in_the_admin(admin_client, pixel, django_capture_on_commit_callbacks):
    form = {"name": "Whales", "pixel": pixel.pk, "kind": "rule", "is_exclusion": "on", "auto_sync": "on",
            "rule_event": "CompletePayment", "rule_goal": "", "rule_min_purchases": "3",
            "rule_min_value_minor": "100000", "rule_campaign": "", "rule_within_days": "90",
            "lookalike_source": "", "lookalike_size": "", "lookalike_location_ids": "[]"}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = admin_client.post(f"{AUDIENCES}add/", form)

    assert response.status_code == 302, response.content.decode()[:3000]
    whales = Audience.objects.get(name="Whales")
    assert (whales.kind, whales.is_exclusion, whales.rule_min_purchases, whales.rule_min_value_minor) == (
        "rule", True, 3, 100_000,
    )  # fmt: skip
    assert len(queued) == 1  # its first sync creates it at TikTok

    refused = admin_client.post(f"{AUDIENCES}add/", {**form, "name": "Wishers", "rule_event": "AddToWishlist"})
    assert refused.status_code == 200
    assert "The pixel maps no conversion goal to AddToWishlist" in refused.content.decode()


def test_a_lookalike_of_a_lookalike_is_refused_in_the_admin(admin_client, pixel, customers):
    lookalike = Audience.objects.create(pixel=pixel, name="LAL", kind="lookalike", lookalike_source=customers,
                                        lookalike_size="NARROW")  # fmt: skip
    form = {"name": "LAL of LAL", "pixel": pixel.pk, "kind": "lookalike", "auto_sync": "on",
            "rule_event": "", "rule_goal": "", "rule_min_purchases": "1", "rule_min_value_minor": "",
            "rule_campaign": "", "rule_within_days": "", "lookalike_source": lookalike.pk,
            "lookalike_size": "BROAD", "lookalike_location_ids": '["6252001"]'}  # fmt: skip

    response = admin_client.post(f"{AUDIENCES}add/", form)

    assert response.status_code == 200
    assert "must not itself be a lookalike" in response.content.decode()
    assert not Audience.objects.filter(name="LAL of LAL").exists()


def test_syncs_and_imports_are_read_only_pages(admin_client, customers):
    AudienceSync.objects.create(audience=customers, trigger="beat", started_at="2025-01-01T00:00:00Z", ok=True)
    record = CustomerFileImport.objects.create(audience=customers, filename="a.csv", status="done",
                                               errors=[{"line": 7, "column": "email", "error": "not an email address"}],
                                               errors_total=1)  # fmt: skip

    assert admin_client.get("/admin/audiences/audiencesync/").status_code == 200
    page = admin_client.get(f"/admin/audiences/customerfileimport/{record.pk}/change/").content.decode()
    assert "<td>7</td><td>email</td><td>not an email address</td>" in page
    assert admin_client.get("/admin/audiences/audiencesync/add/").status_code == 403
