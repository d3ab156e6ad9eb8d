"""The sync over real HTTP to the fake TikTok: batches, only changes, retries, failures, lookalikes."""

import threading

import pytest
from django.db import connection, connections

from audiences import sync
from audiences.membership import LOCK_NAMESPACE, StagedIds
from audiences.models import Audience, AudienceMember, AudienceSync
from audiences.services import LookalikeParams, audience_create, audience_recreate, lookalike_create
from audiences.sync import audience_sync
from tests.audiences.conftest import email_sha, phone_sha
from tiktok_ads.client import TikTokError, TikTokResponse
from tiktok_ads.models import Pixel

pytestmark = pytest.mark.django_db

MAPPING = "/open_api/v1.3/segment/mapping/"
CREATE = "/open_api/v1.3/segment/audience/"
LOOKALIKE = "/open_api/v1.3/dmp/custom_audience/lookalike/create/"


def file_audience(pixel, name="Customers", **extra) -> Audience:
    return audience_create(pixel=pixel, name=name, kind=Audience.Kind.CUSTOMER_FILE, **extra)


def add_members(audience, ids) -> None:
    with connection.cursor() as cursor, StagedIds(cursor) as staged:
        staged.write(ids)
        staged.apply_append(audience.pk)


def emails(count: int, start: int = 0) -> list[tuple[str, str]]:
    return [("EMAIL_SHA256", email_sha(f"person{n}@example.com")) for n in range(start, start + count)]


def states(audience) -> dict[str, int]:
    counts = {}
    for state in AudienceMember.objects.filter(audience=audience).values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


def paths(fake) -> list[str]:
    return [request["path"] for request in fake.requests]


def requests_after(fake, count: int) -> list[dict]:
    """The requests the fake received after the first `count` (reset() would forget its audiences too)."""
    return fake.requests[count:]


def test_changes_go_in_batches_of_the_configured_size(tiktok, pixel, settings):
    settings.AUDIENCE_SYNC_BATCH_SIZE = 2
    audience = file_audience(pixel)
    add_members(audience, emails(4) + [("PHONE_SHA256", phone_sha("+40721234567"))])

    run = audience_sync(audience_id=audience.pk, trigger="api")

    audience.refresh_from_db()
    assert paths(tiktok) == [CREATE, MAPPING, MAPPING, MAPPING]
    # Up to three batches are on their way at once: the fake may receive them in any order.
    bodies = sorted((request["body"] for request in tiktok.requests[1:]), key=lambda body: body["id_schema"])
    assert [(body["id_schema"], len(body["batch_data"])) for body in bodies] == [
        (["EMAIL_SHA256"], 2), (["EMAIL_SHA256"], 2), (["PHONE_SHA256"], 1)]  # fmt: skip
    phone = {"id": phone_sha("+40721234567"), "audience_ids": [audience.tiktok_audience_id]}
    assert bodies[2]["batch_data"] == [[phone]]
    assert (run.ok, run.added, run.requests, run.trigger, run.code) == (True, 5, 4, "api", 0)
    assert run.request_id and '"code": 0' in run.response_text
    assert states(audience) == {"added": 5}
    assert (audience.status, audience.last_error) == ("ready", "")
    assert audience.last_synced_at is not None


def test_an_audience_with_nothing_pending_sends_no_request(tiktok, pixel):
    audience = file_audience(pixel)
    audience_sync(audience_id=audience.pk)  # creates it at TikTok, no members yet
    before = len(tiktok.requests)

    run = audience_sync(audience_id=audience.pk)

    assert requests_after(tiktok, before) == []
    assert (run.ok, run.requests, run.message) == (True, 0, "nothing to send")


@pytest.mark.parametrize("fault", ["code:40100", "http500", "http429", "malformed", "code:50002"])
def test_retryable_answers_are_retried_with_backoff(tiktok, pixel, fault):
    audience = file_audience(pixel)
    add_members(audience, emails(3))
    audience_sync(audience_id=audience.pk)
    add_members(audience, emails(2, start=10))
    before = len(tiktok.requests)
    tiktok.fail_next(2, fault)

    run = audience_sync(audience_id=audience.pk)

    assert (run.ok, run.added, run.requests, run.retries) == (True, 2, 3, 2)
    assert [request["fault"] for request in requests_after(tiktok, before)] == [fault, fault, None]
    assert states(audience) == {"added": 5}


def test_when_retries_run_out_the_members_wait_for_the_next_run(tiktok, pixel, settings):
    settings.AUDIENCE_SYNC_MAX_ATTEMPTS = 3
    audience = file_audience(pixel)
    audience_sync(audience_id=audience.pk)
    add_members(audience, emails(2))
    tiktok.fail_next(3, "http503")

    failed = audience_sync(audience_id=audience.pk)

    audience.refresh_from_db()
    assert (failed.ok, failed.added, failed.requests, failed.retries, failed.more_pending) == (False, 0, 3, 2, False)
    assert failed.message.startswith("HTTP 503") and "retryable" in failed.message
    assert states(audience) == {"pending_add": 2}
    assert audience.last_error == failed.message
    assert audience.status == "ready"  # at TikTok all along: only the members wait

    again = audience_sync(audience_id=audience.pk)

    audience.refresh_from_db()
    assert (again.ok, again.added) == (True, 2)
    assert audience.last_error == ""
    assert tiktok.audience_members(audience.tiktok_audience_id)["EMAIL_SHA256"] == {h for _, h in emails(2)}


def test_a_refusal_stops_the_run_at_once_and_is_recorded(tiktok, pixel):
    audience = file_audience(pixel)
    audience_sync(audience_id=audience.pk)
    add_members(audience, emails(2))
    tiktok.fail_next(1, "code:40002")

    run = audience_sync(audience_id=audience.pk)

    assert (run.ok, run.requests, run.retries, run.code) == (False, 1, 0, 40002)
    assert run.message.startswith("Injected fault code=40002")
    assert '"code": 40002' in run.response_text
    assert states(audience) == {"pending_add": 2}


def test_a_rejected_token_flags_the_pixel(tiktok, pixel):
    audience = file_audience(pixel)
    tiktok.fail_next(1, "code:40105")

    run = audience_sync(audience_id=audience.pk)

    pixel.refresh_from_db()
    assert (run.ok, run.code, pixel.token_invalid) == (False, 40105, True)
    before = len(tiktok.requests)
    blocked = audience_sync(audience_id=audience.pk)
    assert requests_after(tiktok, before) == []
    assert not blocked.ok and "access token" in blocked.message


def test_creation_refused_for_good_marks_the_audience_failed(tiktok, pixel):
    audience = file_audience(pixel)
    tiktok.fail_next(1, "code:40002")

    run = audience_sync(audience_id=audience.pk)

    audience.refresh_from_db()
    assert (run.ok, audience.status, audience.tiktok_audience_id) == (False, "failed", "")
    assert audience.last_error == run.message


def test_a_member_removed_before_its_add_was_sent_is_never_marked_added(tiktok, pixel):
    audience = file_audience(pixel)
    audience_sync(audience_id=audience.pk)
    add_members(audience, emails(1))
    with connection.cursor() as cursor, StagedIds(cursor) as staged:
        staged.write(emails(1))
        assert staged.apply_remove(audience.pk).to_remove == 1

    run = audience_sync(audience_id=audience.pk)

    # Never added at TikTok: the delete is harmless there, and the member ends removed.
    assert (run.added, run.removed) == (0, 1)
    assert states(audience) == {"removed": 1}
    assert [request["body"]["action"] for request in tiktok.requests if request["path"] == MAPPING] == ["delete"]


def test_time_budget_leaves_the_rest_for_a_chained_run(tiktok, pixel, settings):
    settings.AUDIENCE_SYNC_BATCH_SIZE = 1
    audience = file_audience(pixel)
    audience_sync(audience_id=audience.pk)
    add_members(audience, emails(3))

    stopped = audience_sync(audience_id=audience.pk, time_budget_s=0)

    assert (stopped.ok, stopped.more_pending, stopped.requests) == (True, True, 0)
    assert states(audience) == {"pending_add": 3}


@pytest.mark.django_db(transaction=True)
def test_one_sync_per_audience_at_a_time(tiktok, pixel):
    # Not audience_create: in a committing test its queued sync would reach the broker.
    audience = Audience.objects.create(pixel=pixel, name="Customers", kind=Audience.Kind.CUSTOMER_FILE)
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, audience.pk])
            assert audience_sync(audience_id=audience.pk) is None
            assert tiktok.requests == []
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, audience.pk])
    finally:
        other.close()
    assert audience_sync(audience_id=audience.pk).ok


def test_recreate_sends_every_current_member_to_a_new_tiktok_audience(tiktok, pixel):
    audience = file_audience(pixel)
    add_members(audience, emails(3))
    audience_sync(audience_id=audience.pk)
    AudienceMember.objects.filter(audience=audience, id_hash=emails(1)[0][1]).update(state="removed")
    audience.refresh_from_db()
    old_id = audience.tiktok_audience_id

    assert audience_recreate(audience=audience)
    audience_sync(audience_id=audience.pk)

    audience.refresh_from_db()
    assert audience.tiktok_audience_id != old_id
    assert tiktok.audience_members(audience.tiktok_audience_id)["EMAIL_SHA256"] == {h for _, h in emails(3)[1:]}
    assert states(audience) == {"added": 2}


# --- lookalikes ---------------------------------------------------------------------------------


def test_a_lookalike_is_created_at_tiktok_from_a_synced_source(tiktok, pixel):
    source = file_audience(pixel, name="Buyers")
    add_members(source, emails(100))
    audience_sync(audience_id=source.pk)
    source.refresh_from_db()

    lookalike = lookalike_create(source=source, name="Buyers LAL US", audience_size="NARROW",
                                 location_ids=["6252001"], include_source=True)  # fmt: skip
    run = audience_sync(audience_id=lookalike.pk)

    lookalike.refresh_from_db()
    body = tiktok.requests[-1]["body"]
    assert tiktok.requests[-1]["path"] == LOOKALIKE
    assert body == {
        "advertiser_id": "7001",
        "custom_audience_name": "Buyers LAL US",
        "lookalike_spec": {"source_audience_id": source.tiktok_audience_id, "audience_size": "NARROW",
                           "include_source": True, "location_ids": ["6252001"]},
    }  # fmt: skip
    assert (run.ok, run.created_at_tiktok, lookalike.status) == (True, True, "ready")
    at_tiktok = tiktok.audiences()[lookalike.tiktok_audience_id]
    assert (at_tiktok["type"], at_tiktok["name"]) == ("LOOKALIKE", "Buyers LAL US")

    before = len(tiktok.requests)
    assert audience_sync(audience_id=lookalike.pk).requests == 0  # TikTok fills it; nothing to send
    assert requests_after(tiktok, before) == []


def test_tiktok_refuses_a_lookalike_of_a_too_small_source(tiktok, pixel):
    source = file_audience(pixel)
    add_members(source, emails(5))
    audience_sync(audience_id=source.pk)
    source.refresh_from_db()
    lookalike = lookalike_create(source=source, name="Too small", audience_size="BALANCED", location_ids=[])

    run = audience_sync(audience_id=lookalike.pk)

    lookalike.refresh_from_db()
    assert (run.ok, run.code, lookalike.status) == (False, 40002, "failed")
    assert "too small (5 people)" in lookalike.last_error


def test_a_lookalike_waits_for_its_source(tiktok, pixel):
    source = file_audience(pixel)
    lookalike = audience_create(pixel=pixel, name="LAL", kind=Audience.Kind.LOOKALIKE,
                                lookalike=LookalikeParams(source=source, audience_size="BROAD"))  # fmt: skip

    run = audience_sync(audience_id=lookalike.pk)

    assert tiktok.requests == []
    assert not run.ok and "not at TikTok yet" in run.message
    assert Audience.objects.get(pk=lookalike.pk).status == "new"  # tried again once the source is there


def test_audiences_of_a_pixel_without_advertiser_are_refused(pixel):
    Pixel.objects.filter(pk=pixel.pk).update(advertiser_id="")
    pixel.refresh_from_db()
    with pytest.raises(Exception, match="no advertiser_id"):
        file_audience(pixel)
    assert AudienceSync.objects.count() == 0


def test_the_beat_job_picks_the_audiences_with_something_to_do(tiktok, pixel):
    from audiences.selectors import audiences_to_sync

    idle = file_audience(pixel, name="Idle")
    audience_sync(audience_id=idle.pk)
    busy = file_audience(pixel, name="Busy")
    audience_sync(audience_id=busy.pk)
    add_members(busy, emails(1))
    new = file_audience(pixel, name="New")
    manual = file_audience(pixel, name="Manual", auto_sync=False)
    rule = audience_create(pixel=pixel, name="Rule", kind=Audience.Kind.RULE)
    waiting = audience_create(pixel=pixel, name="LAL", kind=Audience.Kind.LOOKALIKE,
                              lookalike=LookalikeParams(source=new, audience_size="BROAD"))  # fmt: skip

    assert audiences_to_sync() == [busy.pk, new.pk, rule.pk]
    assert manual.pk not in audiences_to_sync() and waiting.pk not in audiences_to_sync()
    Pixel.objects.filter(pk=pixel.pk).update(token_invalid=True)
    assert audiences_to_sync() == []


class FailingFrom:
    """The shared limiter's interface; before request number `n` it arms a refusal at the fake TikTok,
    so that request is answered 40002 (the fake has no "fail the one after next")."""

    def __init__(self, fake, n: int):
        self.fake, self.n, self.calls = fake, n, 0

    def acquire(self, timeout: float) -> bool:
        self.calls += 1
        if self.calls == self.n:
            self.fake.fail_next(1, "code:40002")
        return True


def test_batches_accepted_before_a_refusal_stay_added(tiktok, pixel, settings, monkeypatch):
    monkeypatch.setattr(sync, "IN_FLIGHT", 1)  # one batch at a time: which request fails is certain
    settings.AUDIENCE_SYNC_BATCH_SIZE = 2
    audience = file_audience(pixel)
    audience_sync(audience_id=audience.pk)
    add_members(audience, emails(5))

    run = audience_sync(audience_id=audience.pk, limiter=FailingFrom(tiktok, 2))

    audience.refresh_from_db()
    assert (run.ok, run.added, run.requests, run.code) == (False, 2, 2, 40002)
    assert states(audience) == {"added": 2, "pending_add": 3}
    assert len(tiktok.audience_members(audience.tiktok_audience_id)["EMAIL_SHA256"]) == 2

    again = audience_sync(audience_id=audience.pk)

    assert (again.ok, again.added, again.requests) == (True, 3, 2)
    assert states(audience) == {"added": 5}


# --- several batches in flight ------------------------------------------------------------------


class AlwaysFree:
    def acquire(self, timeout: float) -> bool:
        return True


class ScriptedTikTok:
    """A client whose answers depend on the batch (named by its first hash); it records every call.

    `refuse`: batches answered 40002. `flaky`: batches answered 50002 (retryable) the first time.
    `refuse_after`: the refusal waits until that batch was accepted, so both are out at the same time.
    """

    def __init__(self, *, refuse=(), flaky=(), refuse_after=None):
        self.refuse, self.flaky, self.refuse_after = set(refuse), set(flaky), refuse_after
        self.calls, self.accepted = [], set()
        self.lock = threading.Lock()
        self.accepted_event = threading.Event()

    def audience_create(self, *, advertiser_id: str, name: str) -> str:
        return "7000000009"

    def prepare_audience_members(self, **request):
        return request

    def send(self, prepared):
        return self.audience_members(**prepared)

    def audience_members(self, *, advertiser_id, audience_id, action, id_schema, rows):
        first = rows[0][0]
        with self.lock:
            retried = first in self.calls
            self.calls.append(first)
        if first in self.refuse:
            if self.refuse_after is not None:
                assert self.accepted_event.wait(5)
            raise TikTokError("refused", retryable=False, code=40002)
        if first in self.flaky and not retried:
            raise TikTokError("busy", retryable=True, code=50002)
        with self.lock:
            self.accepted.update(row[0] for row in rows)
        if first == self.refuse_after:
            self.accepted_event.set()
        return TikTokResponse(code=0, message="OK", request_id="r", data={}, http_status=200, response_text="{}")

    def close(self) -> None:
        pass


def batches_of(audience, size: int) -> list[list[str]]:
    hashes = sorted(AudienceMember.objects.filter(audience=audience).values_list("id_hash", flat=True))
    return [hashes[start : start + size] for start in range(0, len(hashes), size)]


def added_hashes(audience) -> set[str]:
    return set(AudienceMember.objects.filter(audience=audience, state="added").values_list("id_hash", flat=True))


@pytest.fixture
def three_in_flight(settings, monkeypatch):
    monkeypatch.setattr(sync, "IN_FLIGHT", 3)
    settings.AUDIENCE_SYNC_BATCH_SIZE = 2


def test_a_refused_middle_batch_stays_pending_and_the_batches_accepted_meanwhile_are_marked(pixel, three_in_flight):
    audience = file_audience(pixel)
    add_members(audience, emails(10))
    batches = batches_of(audience, 2)
    tiktok = ScriptedTikTok(refuse=[batches[1][0]], refuse_after=batches[2][0])

    run = audience_sync(audience_id=audience.pk, client=tiktok, limiter=AlwaysFree())

    assert (run.ok, run.code, run.message) == (False, 40002, "refused code=40002 not retryable")
    assert set(batches[0]) | set(batches[2]) <= tiktok.accepted  # the one before, and one out at the same time
    assert not set(batches[1]) & tiktok.accepted
    assert added_hashes(audience) == tiktok.accepted  # marked: exactly what TikTok accepted
    # Requests: the audience's creation, then the batches.
    assert (run.added, run.requests, run.retries) == (len(tiktok.accepted), 1 + len(tiktok.calls), 0)
    assert states(audience) == {"added": len(tiktok.accepted), "pending_add": 10 - len(tiktok.accepted)}


def test_no_batch_leaves_after_the_one_that_stopped_the_run(pixel, settings, monkeypatch):
    monkeypatch.setattr(sync, "IN_FLIGHT", 2)
    settings.AUDIENCE_SYNC_BATCH_SIZE = 2
    audience = file_audience(pixel)
    add_members(audience, emails(10))
    batches = batches_of(audience, 2)
    tiktok = ScriptedTikTok(refuse=[batches[0][0]])

    run = audience_sync(audience_id=audience.pk, client=tiktok, limiter=AlwaysFree())

    assert not run.ok
    assert set(tiktok.calls) <= {batches[0][0], batches[1][0]}  # the second was already out, or not
    assert run.requests == 1 + len(tiktok.calls)
    assert added_hashes(audience) == tiktok.accepted
    assert not set(batches[0]) & tiktok.accepted


def test_retries_of_one_batch_while_others_are_out_are_counted_exactly(pixel, three_in_flight):
    audience = file_audience(pixel)
    add_members(audience, emails(10))
    batches = batches_of(audience, 2)
    tiktok = ScriptedTikTok(flaky=[batches[0][0], batches[3][0]])

    run = audience_sync(audience_id=audience.pk, client=tiktok, limiter=AlwaysFree())

    assert (run.ok, run.added, run.requests, run.retries, run.code) == (True, 10, 1 + 5 + 2, 2, 0)
    assert states(audience) == {"added": 10}
