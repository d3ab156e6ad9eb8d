"""Automation rules: each action fires once when its condition holds, not again within the cooldown,
and not when the condition does not hold."""

import json
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from conversions.models import Campaign, Click, TrafficSource
from reports.models import CostPerClick, Rule, RuleFiring, SourceList
from reports.services import rule_evaluate, rules_evaluate
from tests.factories import CampaignFactory, TrafficSourceFactory
from tests.reports.conftest import add_conversion, settle_and_roll_up

pytestmark = pytest.mark.django_db


def traffic(link, count, *, subid="", minutes_ago=10, converted=0, amount_minor=1000):
    moment = timezone.now() - timedelta(minutes=minutes_ago)
    start = Click.objects.count()
    clicks = Click.objects.bulk_create(
        Click(click_id=f"r{start + n}", campaign=link.campaign, link=link, created_at=moment, subid=subid)
        for n in range(count)
    )
    for click in clicks[:converted]:
        add_conversion(click=click, created_at=moment + timedelta(minutes=1), amount_minor=amount_minor)
    settle_and_roll_up()


def make_rule(campaign, action, **fields):
    defaults = {"name": f"{action} rule", "metric": "clicks", "operator": ">=", "threshold": Decimal(5),
                "metric_2": "conversions", "operator_2": "=", "threshold_2": Decimal(0), "window_hours": 24,
                "cooldown_hours": 6}  # fmt: skip
    return Rule.objects.create(campaign=campaign, action=action, **{**defaults, **fields})


@pytest.fixture
def links(campaign):
    return {name: TrafficSourceFactory(campaign=campaign, utm_id=name) for name in ("burning", "paying", "small")}


def test_pause_link_fires_on_the_link_that_burns_only(campaign, links):
    traffic(links["burning"], 6)
    traffic(links["paying"], 6, converted=1)
    traffic(links["small"], 2)
    rule = make_rule(campaign, Rule.Action.PAUSE_LINK)

    firings = rule_evaluate(rule_id=rule.pk)

    assert [firing.target for firing in firings] == ["link:burning"]
    assert firings[0].metrics["clicks"] == 6 and firings[0].metrics["conversions"] == 0
    assert firings[0].ok and firings[0].result == "link burning paused"
    active = dict(TrafficSource.objects.values_list("utm_id", "is_active"))
    assert active == {"burning": False, "paying": True, "small": True}
    assert rule_evaluate(rule_id=rule.pk) == []  # paused: nothing more to do
    assert RuleFiring.objects.count() == 1


def test_pause_campaign_on_roi_below_minus_50(campaign, links):
    other = CampaignFactory()
    other_link = TrafficSourceFactory(campaign=other, utm_id="other")
    for each in (campaign, other):
        CostPerClick.objects.create(campaign=each, cost_per_click=Decimal("1.00"), starts_on=timezone.now().date())
    traffic(links["burning"], 10, converted=1, amount_minor=200)  # revenue 2.00, cost 10.00: ROI −80 %
    traffic(other_link, 10, converted=1, amount_minor=800)  # ROI −20 %
    rules = [make_rule(each, Rule.Action.PAUSE_CAMPAIGN, metric="roi", operator="<", threshold=Decimal(-50),
                       metric_2="") for each in (campaign, other)]  # fmt: skip

    firings = rules_evaluate()

    assert [(firing.rule_id, firing.target) for firing in firings] == [(rules[0].pk, f"campaign:{campaign.pk}")]
    assert firings[0].metrics["roi"] == pytest.approx(-80)
    assert dict(Campaign.objects.values_list("pk", "status")) == {campaign.pk: "paused", other.pk: "active"}
    assert rules_evaluate() == []


def test_blacklist_and_whitelist_subids(admin_client, campaign, links):
    traffic(links["burning"], 6, subid="bad_source")
    traffic(links["burning"], 6, subid="good_source", converted=2)
    traffic(links["burning"], 6, subid="")  # no sub-id: nothing to list
    blacklist = make_rule(campaign, Rule.Action.BLACKLIST_SUBID)
    whitelist = make_rule(campaign, Rule.Action.WHITELIST_SUBID, metric="conversions", operator=">=",
                          threshold=Decimal(2), metric_2="")  # fmt: skip

    assert [f.target for f in rule_evaluate(rule_id=blacklist.pk)] == ["subid:bad_source"]
    assert [f.target for f in rule_evaluate(rule_id=whitelist.pk)] == ["subid:good_source"]
    assert rule_evaluate(rule_id=blacklist.pk) == [] and rule_evaluate(rule_id=whitelist.pk) == []

    listed = {entry.subid: (entry.kind, entry.rule_id) for entry in SourceList.objects.all()}
    assert listed == {"bad_source": ("blacklist", blacklist.pk), "good_source": ("whitelist", whitelist.pk)}
    today = timezone.now().date().isoformat()
    page = admin_client.get("/admin/reports/", {"group_1": "subid", "date_from": today, "date_to": today,
                                                "tz": "UTC"}).content.decode()  # fmt: skip
    assert "bad_source [blacklisted]" in page and "good_source [whitelisted]" in page
    assert "bad_source" in admin_client.get("/admin/reports/sourcelist/").content.decode()


def test_email_fires_once_per_cooldown_and_again_after_it(campaign, links, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    traffic(links["burning"], 6)
    rule = make_rule(campaign, Rule.Action.NOTIFY_EMAIL, notify_email="ads@example.com, boss@example.com",
                     cooldown_hours=1, window_hours=24)  # fmt: skip
    now = timezone.now()

    first = rule_evaluate(rule_id=rule.pk, now=now)
    within = rule_evaluate(rule_id=rule.pk, now=now + timedelta(minutes=59))
    after = rule_evaluate(rule_id=rule.pk, now=now + timedelta(minutes=61))

    assert len(first) == 1 and within == [] and len(after) == 1
    assert len(mail.outbox) == 2
    message = mail.outbox[0]
    assert message.to == ["ads@example.com", "boss@example.com"]
    assert f"campaign:{campaign.pk}" in message.subject and "clicks: 6" in message.body
    assert first[0].result == "email sent to ads@example.com, boss@example.com"


def test_no_firing_when_the_condition_does_not_hold(campaign, links, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    traffic(links["paying"], 6, converted=1)  # 6 clicks, but a conversion
    traffic(links["small"], 3, minutes_ago=60 * 30)  # outside the 24-hour window
    rules = [make_rule(campaign, action, notify_email="ads@example.com", webhook_url="http://127.0.0.1:9/")
             for action in Rule.Action.values]  # fmt: skip
    Rule.objects.create(campaign=campaign, name="disabled", enabled=False, metric="clicks", operator=">=",
                        threshold=0, action=Rule.Action.PAUSE_CAMPAIGN)  # fmt: skip

    assert rules_evaluate() == []
    assert len(mail.outbox) == 0 and RuleFiring.objects.count() == 0
    assert Campaign.objects.get().status == "active" and all(TrafficSource.objects.values_list("is_active", flat=True))
    assert all(rule.last_evaluated_at for rule in Rule.objects.filter(pk__in=[r.pk for r in rules]))


class Catcher(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):
        Catcher.bodies.append((self.headers["Content-Type"], self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    Catcher.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Catcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Catcher.bodies
    server.shutdown()
    server.server_close()


def test_webhook_posts_json_once_within_the_cooldown(campaign, links, webhook_server):
    url, bodies = webhook_server
    traffic(links["burning"], 7)
    rule = make_rule(campaign, Rule.Action.NOTIFY_WEBHOOK, link=links["burning"], webhook_url=url)

    firings = rule_evaluate(rule_id=rule.pk)
    rule_evaluate(rule_id=rule.pk)

    assert len(bodies) == 1
    content_type, raw = bodies[0]
    body = json.loads(raw)
    assert content_type == "application/json"
    assert body["target"] == "link:burning" and body["link"] == "burning"
    assert body["rule"] == {"id": rule.pk, "name": rule.name, "action": "notify_webhook", "window_hours": 24}
    assert body["metrics"]["clicks"] == 7 and body["metrics"]["conversions"] == 0
    assert firings[0].ok and firings[0].result == "webhook answered HTTP 200"


def test_a_failed_webhook_is_logged_and_tried_again(campaign, links):
    traffic(links["burning"], 6)
    rule = make_rule(campaign, Rule.Action.NOTIFY_WEBHOOK, webhook_url="http://127.0.0.1:9/nothing-listens")

    first = rule_evaluate(rule_id=rule.pk)
    second = rule_evaluate(rule_id=rule.pk)

    assert not first[0].ok and first[0].result.startswith("webhook failed")
    assert len(second) == 1  # a failure does not start the cooldown


def test_rules_admin_shows_the_firings(admin_client, campaign, links):
    traffic(links["burning"], 6)
    rule = make_rule(campaign, Rule.Action.PAUSE_LINK)
    rule_evaluate(rule_id=rule.pk)

    assert "link burning paused" in admin_client.get(f"/admin/reports/rule/{rule.pk}/change/").content.decode()
    assert "link:burning" in admin_client.get("/admin/reports/rulefiring/").content.decode()
    assert "link:burning" in admin_client.get("/admin/reports/rule/").content.decode()


def test_beat_runs_the_rollup_and_the_rules(settings, campaign, links):
    from reports import tasks

    assert settings.CELERY_BEAT_SCHEDULE["reports-rollup"]["task"] == "reports.tasks.report_rollup_refresh"
    assert settings.CELERY_BEAT_SCHEDULE["rules-evaluate"]["task"] == "reports.tasks.rules_evaluate"
    assert settings.CELERY_BEAT_SCHEDULE["rules-evaluate"]["schedule"].run_every.total_seconds() == 300
    Click.objects.create(click_id="beat", campaign=campaign, link=links["burning"],
                         created_at=timezone.now() - timedelta(minutes=1))  # fmt: skip
    make_rule(campaign, Rule.Action.PAUSE_CAMPAIGN, threshold=Decimal(1), metric_2="")

    tasks.report_rollup_refresh()
    tasks.report_rollup_reconcile()
    tasks.rules_evaluate()

    assert Campaign.objects.get().status == "paused"
    assert RuleFiring.objects.get().metrics["clicks"] == 1
