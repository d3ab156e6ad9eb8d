"""Rule audiences fill from the tracker's own conversions and follow them: buyers in, refunds out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audiences import tasks
from audiences.models import Audience, AudienceMember, AudienceSync
from audiences.services import RuleParams, audience_create, rule_refresh
from audiences.sync import audience_sync
from conversions.models import Conversion, Lead
from conversions.services import lead_start
from tests.audiences.conftest import email_sha, phone_sha
from tests.factories import CampaignFactory, TrafficSourceFactory

pytestmark = pytest.mark.django_db

MAPPING = "/open_api/v1.3/segment/mapping/"
CREATE = "/open_api/v1.3/segment/audience/"


def buyers_audience(pixel, **rule) -> Audience:
    return audience_create(pixel=pixel, name="Buyers", kind=Audience.Kind.RULE, rule=RuleParams(**rule))


def members(audience, state=None) -> set[tuple[str, str]]:
    rows = AudienceMember.objects.filter(audience=audience)
    if state:
        rows = rows.filter(state=state)
    return set(rows.values_list("id_type", "id_hash"))


def state_of(audience) -> dict[str, str]:
    return dict(AudienceMember.objects.filter(audience=audience).values_list("id_hash", "state"))


def mapping_bodies(fake) -> list[dict]:
    return [request["body"] for request in fake.requests if request["path"] == MAPPING]


def test_buyers_fill_sync_and_a_refund_removes_them_at_the_next_sync(tiktok, pixel, buy):
    buy("ana@example.com", 5000, tx="order-1", phone="+40721234567")
    buy("bob@example.com", 2500, tx="order-2")
    buy("", 900, tx="order-3")  # nothing to match on: not a member
    audience = buyers_audience(pixel)

    first = audience_sync(audience_id=audience.pk)

    audience.refresh_from_db()
    tiktok_id = audience.tiktok_audience_id
    ana, ana_phone, bob = email_sha("ana@example.com"), phone_sha("+40721234567"), email_sha("bob@example.com")
    assert (first.ok, first.created_at_tiktok, first.rule_added, first.added, first.requests) == (True, True, 3, 3, 2)
    assert [request["path"] for request in tiktok.requests] == [CREATE, MAPPING]
    assert tiktok.requests[0]["body"] == {"advertiser_id": "7001", "custom_audience_name": "Buyers", "action": "create"}
    assert tiktok.requests[0]["headers"]["Access-Token"] == "tok-live-abcdef123456"
    body = mapping_bodies(tiktok)[0]
    assert (body["advertiser_ids"], body["action"], body["id_schema"]) == (
        ["7001"],
        "add",
        ["EMAIL_SHA256", "PHONE_SHA256"],
    )
    assert sorted(body["batch_data"], key=str) == sorted(
        [
            [{"id": ana, "audience_ids": [tiktok_id]}, {}],
            [{"id": bob, "audience_ids": [tiktok_id]}, {}],
            [{}, {"id": ana_phone, "audience_ids": [tiktok_id]}],
        ],
        key=str,
    )
    assert tiktok.audience_members(tiktok_id) == {"EMAIL_SHA256": {ana, bob}, "PHONE_SHA256": {ana_phone}}
    assert state_of(audience) == {ana: "added", bob: "added", ana_phone: "added"}

    # Bob's purchase is refunded: the partner sends the same transaction as rejected.
    buy("bob@example.com", 2500, tx="order-2", status="rejected")
    assert Conversion.objects.get(transaction_id="order-2").status == "rejected"
    second = audience_sync(audience_id=audience.pk)

    assert (second.ok, second.rule_added, second.rule_removed, second.added, second.removed) == (True, 0, 1, 0, 1)
    delete = mapping_bodies(tiktok)[1]
    assert delete["action"] == "delete"
    assert delete["id_schema"] == ["EMAIL_SHA256"]
    assert delete["batch_data"] == [[{"id": bob, "audience_ids": [tiktok_id]}]]
    assert tiktok.audience_members(tiktok_id) == {"EMAIL_SHA256": {ana}, "PHONE_SHA256": {ana_phone}}
    assert state_of(audience)[bob] == "removed"

    # Nothing changed since: the next run sends nothing at all, and says so.
    requests_before = len(tiktok.requests)
    third = audience_sync(audience_id=audience.pk)
    assert len(tiktok.requests) == requests_before
    assert (third.ok, third.requests, third.added, third.removed, third.message) == (True, 0, 0, 0, "nothing to send")
    assert AudienceSync.objects.filter(audience=audience).count() == 3


def test_the_beat_job_keeps_a_rule_audience_in_step_without_anyone_pressing_a_button(tiktok, pixel, buy, eager_celery):
    audience = buyers_audience(pixel)
    buy("ana@example.com", tx="order-1")

    tasks.sync_all()  # what celery beat runs every AUDIENCE_SYNC_INTERVAL_S

    audience.refresh_from_db()
    assert tiktok.audience_members(audience.tiktok_audience_id) == {"EMAIL_SHA256": {email_sha("ana@example.com")}}

    buy("cleo@example.com", tx="order-2")
    buy("ana@example.com", tx="order-1", status="rejected")
    tasks.sync_all()

    assert tiktok.audience_members(audience.tiktok_audience_id) == {"EMAIL_SHA256": {email_sha("cleo@example.com")}}
    assert set(AudienceSync.objects.filter(audience=audience).values_list("trigger", flat=True)) == {"beat"}


def test_a_member_who_buys_again_after_a_refund_comes_back(tiktok, pixel, buy):
    audience = buyers_audience(pixel)
    buy("ana@example.com", tx="order-1")
    audience_sync(audience_id=audience.pk)
    buy("ana@example.com", tx="order-1", status="rejected")
    audience_sync(audience_id=audience.pk)
    assert state_of(audience) == {email_sha("ana@example.com"): "removed"}

    buy("ana@example.com", tx="order-9")
    run = audience_sync(audience_id=audience.pk)

    assert (run.rule_added, run.added) == (1, 1)
    assert state_of(audience) == {email_sha("ana@example.com"): "added"}
    audience.refresh_from_db()
    assert tiktok.audience_members(audience.tiktok_audience_id)["EMAIL_SHA256"] == {email_sha("ana@example.com")}


def test_a_match_lost_before_it_was_ever_sent_is_simply_dropped(tiktok, pixel, buy):
    audience = buyers_audience(pixel)
    buy("ana@example.com", tx="order-1")
    assert rule_refresh(audience=audience).to_add == 1
    buy("ana@example.com", tx="order-1", status="rejected")

    changes = rule_refresh(audience=audience)

    assert (changes.to_add, changes.to_remove, changes.dropped) == (0, 0, 1)
    assert members(audience) == set()
    assert tiktok.requests == []


def test_count_value_campaign_and_window_all_apply_per_person(pixel, buy, shop_link):
    other_link = TrafficSourceFactory(campaign=CampaignFactory(pixel=pixel), utm_id="tiktok_other")
    buy("two-small@example.com", 1000, tx="a1", customer_id="crm_1")
    buy("two-small@example.com", 1000, tx="a2", customer_id="crm_1")  # 2 purchases, 20.00
    buy("one-big@example.com", 9000, tx="b1", customer_id="crm_2")  # 1 purchase, 90.00
    buy("three@example.com", 2000, tx="c1", customer_id="crm_3")
    buy("three@example.com", 2000, tx="c2", customer_id="crm_3")
    buy("three@example.com", 2000, tx="c3", customer_id="crm_3")  # 3 purchases, 60.00
    buy("elsewhere@example.com", 9000, tx="d1", link=other_link, customer_id="crm_4")
    buy("elsewhere@example.com", 9000, tx="d2", link=other_link, customer_id="crm_4")
    old = buy("old@example.com", 9000, tx="e1", customer_id="crm_5")
    buy("old@example.com", 9000, tx="e2", customer_id="crm_5")
    Conversion.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    def matching(**rule) -> set[str]:
        audience = buyers_audience(pixel, **rule)
        rule_refresh(audience=audience)
        return {id_hash for _, id_hash in members(audience)}

    named = {email_sha(f"{name}@example.com"): name for name in
             ("two-small", "one-big", "three", "elsewhere", "old")}  # fmt: skip

    def names(hashes):
        return {named[h] for h in hashes}

    assert names(matching(min_purchases=2)) == {"two-small", "three", "elsewhere", "old"}
    assert names(matching(min_value_minor=6000)) == {"one-big", "three", "elsewhere", "old"}
    assert names(matching(min_purchases=2, min_value_minor=6000)) == {"three", "elsewhere", "old"}
    assert names(matching(min_purchases=2, campaign=shop_link.campaign)) == {"two-small", "three", "old"}
    # Within 30 days only one of old@'s purchases counts, so it has 1 purchase, not 2.
    assert names(matching(min_purchases=2, within_days=30)) == {"two-small", "three", "elsewhere"}


def test_event_and_goal_pick_the_conversions(pixel, buy):
    buy("payer@example.com", tx="p1", goal="purchase")
    buy("depositor@example.com", tx="p2", goal="deposit")
    buy("signup@example.com", 0, tx="p3", goal="registration")
    buy("lead@example.com", 0, tx="p4", goal="lead_form")

    def matching(**rule) -> set[str]:
        audience = buyers_audience(pixel, **rule)
        rule_refresh(audience=audience)
        return {id_hash for _, id_hash in members(audience)}

    emails = {name: email_sha(f"{name}@example.com") for name in ("payer", "depositor", "signup", "lead")}
    # The pixel's goal_events map purchase, sale and deposit to CompletePayment.
    assert matching(event="CompletePayment") == {emails["payer"], emails["depositor"]}
    assert matching(event="CompletePayment", goal="deposit") == {emails["depositor"]}
    assert matching(event="CompleteRegistration") == {emails["signup"]}
    assert matching(event="", goal="lead_form") == {emails["lead"]}
    assert matching(event="") == set(emails.values())


def test_a_persons_ids_come_from_all_their_conversions_and_their_lead(pixel, buy, shop_link):
    lead_start(token=shop_link.utm_id, telegram_user_id=42, username="ana",
               email_sha256=email_sha("ana@lead.example"), phone_sha256=phone_sha("+40700000001"))  # fmt: skip
    buy("ana@shop.example", 1000, tx="t1", customer_id="telegram_42")
    buy("", 1000, tx="t2", phone="+40700000002", customer_id="telegram_42")
    audience = buyers_audience(pixel, min_purchases=2)

    rule_refresh(audience=audience)

    assert Lead.objects.get().conversions.count() == 2
    assert members(audience) == {
        ("EMAIL_SHA256", email_sha("ana@lead.example")),
        ("EMAIL_SHA256", email_sha("ana@shop.example")),
        ("PHONE_SHA256", phone_sha("+40700000001")),
        ("PHONE_SHA256", phone_sha("+40700000002")),
    }


def test_complete_registration_counts_bot_starts(pixel, shop_link):
    lead_start(token=shop_link.utm_id, telegram_user_id=7, email_sha256=email_sha("starter@example.com"))
    lead_start(token=shop_link.utm_id, telegram_user_id=8)  # no email or phone: nothing to match on
    audience = buyers_audience(pixel, event="CompleteRegistration")

    rule_refresh(audience=audience)

    assert members(audience) == {("EMAIL_SHA256", email_sha("starter@example.com"))}
