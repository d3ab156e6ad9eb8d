"""Sending an audience's changes to TikTok: create it if needed, then only the pending members.

Guarantees:
- One run per audience at a time (a PostgreSQL advisory lock); a second one returns at once.
- Only changes are sent: pending_add members with action "add", pending_remove ones with "delete",
  in batches of AUDIENCE_SYNC_BATCH_SIZE, each request through the shared TikTok request limiter.
  Up to IN_FLIGHT batches are on their way at once (the limiter, not this run, sets the pace).
  An audience with nothing pending sends no request at all.
- A member is marked added / removed only after TikTok accepted its batch, and only if it is still in
  the state that was sent (a member removed meanwhile stays pending_remove and is deleted next time).
- Retryable answers (40100, 5xx, timeouts…) are retried with exponential backoff and jitter up to
  AUDIENCE_SYNC_MAX_ATTEMPTS times; then the run stops and its members stay pending for the next one.
  Other answers stop the run at once: no further request leaves, the batches already out are answered
  and marked if accepted. Either way the run is recorded (AudienceSync) with TikTok's code and message
  of the answer that stopped it, and the audience shows the error until a run succeeds.
"""

import logging
import random
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audiences.membership import audience_lock, mark_sent, pending_batch, rule_refresh_members
from audiences.models import Audience, AudienceMember, AudienceSync
from audiences.tiktok import client_for_pixel
from tiktok_ads.client import TikTokClient, TikTokError
from tiktok_ads.limits import request_limiter
from tiktok_ads.models import Pixel

logger = logging.getLogger(__name__)
State = AudienceMember.State
ID_TYPES = (AudienceMember.IdType.EMAIL_SHA256, AudienceMember.IdType.PHONE_SHA256)
TOKEN_INVALID_CODE = 40105  # the pixel's token: flagged on the pixel, as the event sender does
LIMITER_WAIT_S = 5.0
MESSAGE_LIMIT = 500
RESPONSE_TEXT_LIMIT = 2000
# Batches sent at once. One at a time, a batch of 10,000 costs ~0.25 s of JSON, HTTP and TikTok's own
# work, and a large first sync ran at 4 requests/s where the limiter allows 9; three keep it at the limit.
IN_FLIGHT = 3


class _Stop(Exception):
    """Ends a run early. failed=False: only time (or the rate limit) ran out, the next run goes on.
    permanent: TikTok refused for a reason a retry cannot fix."""

    def __init__(self, *, failed: bool, permanent: bool = False, token_rejected: bool = False):
        super().__init__()
        self.failed = failed
        self.permanent = permanent
        self.token_rejected = token_rejected


class _Cancelled(Exception):
    """A batch not sent (or not retried) because another one stopped the run first."""


def backoff_s(attempt: int) -> float:
    """base · 2^(n-1), capped, times a random factor in [0.5, 1] so workers do not retry in step."""
    delay = min(settings.AUDIENCE_SYNC_RETRY_MAX_S, settings.AUDIENCE_SYNC_RETRY_BASE_S * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.0)


def audience_sync(
    *,
    audience_id: int,
    trigger: str = "beat",
    time_budget_s: float | None = None,
    client: TikTokClient | None = None,
    limiter=None,
) -> AudienceSync | None:
    """Refresh a rule audience and send the audience's pending changes; returns the recorded run.

    None when the audience does not exist or another worker is syncing it right now.
    """
    with audience_lock(audience_id) as held:
        if not held:
            return None
        audience = Audience.objects.select_related("pixel", "lookalike_source").filter(pk=audience_id).first()
        if audience is None:
            return None
        budget = settings.AUDIENCE_SYNC_TIME_BUDGET_S if time_budget_s is None else time_budget_s
        run = _SyncRun(audience, trigger=trigger, deadline=time.monotonic() + budget, client=client, limiter=limiter)
        return run.run()


class _SyncRun:
    def __init__(self, audience: Audience, *, trigger: str, deadline: float, client, limiter):
        self.audience = audience
        self.deadline = deadline
        self._client = client
        self.limiter = limiter or request_limiter()
        self.record = AudienceSync(audience=audience, trigger=trigger, started_at=timezone.now())
        # Sender threads update the record; the first _Stop is the run's, later answers are not noted.
        self._lock = threading.Lock()
        self._stopped: _Stop | None = None
        self._halt = threading.Event()

    @property
    def client(self) -> TikTokClient:
        if self._client is None:
            self._client = client_for_pixel(self.audience.pixel)
        return self._client

    def run(self) -> AudienceSync:
        failed = False
        own_client = self._client is None
        try:
            if self.audience.kind == Audience.Kind.RULE:
                self._refresh_rule()
            self._check_pixel()
            if not self.audience.tiktok_audience_id:
                self._create_at_tiktok()
            if self.audience.kind != Audience.Kind.LOOKALIKE:
                self._send_pending(State.PENDING_ADD, "add", State.ADDED)
                self._send_pending(State.PENDING_REMOVE, "delete", State.REMOVED)
        except _Stop as stop:
            failed = stop.failed
            self.record.more_pending = not stop.failed
            if stop.token_rejected:
                Pixel.objects.filter(pk=self.audience.pixel_id).update(token_invalid=True)
                logger.error("TikTok rejected the access token of pixel %s (audience sync)", self.audience.pixel)
        finally:
            if own_client and self._client is not None:
                self._client.close()
        return self._finish(failed=failed)

    # --- steps ---

    def _refresh_rule(self) -> None:
        with transaction.atomic():
            changes = rule_refresh_members(self.audience)
            Audience.objects.filter(pk=self.audience.pk).update(last_refreshed_at=timezone.now())
        self.record.rule_added = changes.to_add
        self.record.rule_removed = changes.to_remove + changes.dropped

    def _check_pixel(self) -> None:
        pixel = self.audience.pixel
        if pixel.token_invalid:
            self._fail_before_request(f"pixel {pixel}: TikTok rejected its access token (40105); replace it first")
        if not pixel.advertiser_id:
            self._fail_before_request(f"pixel {pixel} has no advertiser_id")

    def _create_at_tiktok(self) -> None:
        audience = self.audience
        if audience.kind == Audience.Kind.LOOKALIKE:
            source = audience.lookalike_source
            if not source.tiktok_audience_id:
                self._fail_before_request(f"its source audience {source.pk} is not at TikTok yet")

            def create():
                return self.client.lookalike_create(
                    advertiser_id=audience.pixel.advertiser_id,
                    name=audience.name,
                    source_audience_id=source.tiktok_audience_id,
                    audience_size=audience.lookalike_size,
                    location_ids=audience.lookalike_location_ids or [],
                    include_source=audience.lookalike_include_source,
                )
        else:

            def create():
                return self.client.audience_create(advertiser_id=audience.pixel.advertiser_id, name=audience.name)

        try:
            tiktok_audience_id = self._request(create)
        except _Stop as stop:
            if stop.permanent:
                # TikTok said no for good (e.g. a lookalike source under 100 people): a person must act.
                Audience.objects.filter(pk=audience.pk).update(status=Audience.Status.FAILED)
            raise
        self.record.message = f"created at TikTok: audience_id {tiktok_audience_id}"
        self.record.created_at_tiktok = True
        audience.tiktok_audience_id = tiktok_audience_id
        Audience.objects.filter(pk=audience.pk).update(
            tiktok_audience_id=tiktok_audience_id, status=Audience.Status.READY, last_error=""
        )

    def _send_pending(self, state: str, action: str, new_state: str) -> None:
        """Send the members in `state`, batch after batch, in (id type, hash) order.

        Up to IN_FLIGHT batches are out at once, each from a sender thread; meanwhile this thread reads the
        next batches and marks the answered ones, in order. Only this thread touches the database. When a
        batch stops the run, the batches still out are let finish and marked if TikTok accepted them.
        """
        self.client  # noqa: B018 - created here, once, before the sender threads share it
        in_flight = deque()
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="audience-sync") as senders:
            try:
                for batch in self._pending_batches(state):
                    in_flight.append((batch, senders.submit(self._send_batch, batch, action)))
                    if len(in_flight) >= IN_FLIGHT:
                        self._settle(*in_flight.popleft(), state, new_state, action)
                while in_flight:
                    self._settle(*in_flight.popleft(), state, new_state, action)
            except (_Stop, _Cancelled):
                self._halt.set()
                for batch, answer in in_flight:
                    if answer.exception() is None:  # waits for it: accepted while the run was stopping
                        self._mark(batch, state, new_state, action)
                raise self._stopped from None
            except BaseException:
                self._halt.set()  # e.g. the database failed here: nothing more leaves
                raise
        if time.monotonic() >= self.deadline:
            raise _Stop(failed=False)

    def _pending_batches(self, state: str):
        """The batches to send, read as they are needed; none once the deadline has passed."""
        after = None
        while time.monotonic() < self.deadline:
            batch = pending_batch(self.audience.pk, state, after=after, size=settings.AUDIENCE_SYNC_BATCH_SIZE)
            if not batch:
                return
            after = batch[-1][1:]
            yield batch

    def _settle(self, batch: list[tuple], answer, state: str, new_state: str, action: str) -> None:
        try:
            answer.result()
        except _Cancelled:
            raise self._stopped from None
        self._mark(batch, state, new_state, action)

    def _send_batch(self, batch: list[tuple], action: str):
        id_schema = [id_type for id_type in ID_TYPES if any(row[1] == id_type for row in batch)]
        rows = [[id_hash if id_type == column else None for column in id_schema] for _, id_type, id_hash in batch]
        # Serialised before the rate-limit slot is taken: with several batches out, a body built after it
        # would leave late, and requests granted 110 ms apart could reach TikTok closer than that (40100).
        prepared = self.client.prepare_audience_members(
            advertiser_id=self.audience.pixel.advertiser_id,
            audience_id=self.audience.tiktok_audience_id,
            action=action,
            id_schema=id_schema,
            rows=rows,
        )
        return self._request(lambda: self.client.send(prepared))

    def _mark(self, batch: list[tuple], state: str, new_state: str, action: str) -> None:
        done = mark_sent([row[0] for row in batch], sent_state=state, new_state=new_state)
        if action == "add":
            self.record.added += done
        else:
            self.record.removed += done

    # --- one request, with retries ---

    def _request(self, call):
        """One request, retried as its answers allow; called from sender threads too."""
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_slot()
            with self._lock:
                self.record.requests += 1
            try:
                result = call()
            except TikTokError as error:
                delay = self._after_error(error, attempt)
                if self._halt.wait(delay):
                    raise _Cancelled from None
                continue
            with self._lock:
                if not self._halt.is_set():
                    self._note_answer(result)
            return result

    def _wait_for_slot(self) -> None:
        remaining = self.deadline - time.monotonic()
        if self._halt.is_set():
            raise _Cancelled
        if remaining <= 0 or not self.limiter.acquire(timeout=min(LIMITER_WAIT_S, remaining)):
            raise self._stop(_Stop(failed=False), message="stopped: waiting for the TikTok request rate limit")
        if self._halt.is_set():
            raise _Cancelled  # stopped while this one waited: the slot goes unused

    def _after_error(self, error: TikTokError, attempt: int) -> float:
        """The backoff before the next attempt; raises the _Stop (or _Cancelled) when there is none."""
        if error.code == TOKEN_INVALID_CODE:
            raise self._stop(_Stop(failed=True, token_rejected=True), error=error)
        if not error.retryable:
            raise self._stop(_Stop(failed=True, permanent=True), error=error)
        if attempt >= settings.AUDIENCE_SYNC_MAX_ATTEMPTS:
            raise self._stop(_Stop(failed=True), error=error)
        delay = backoff_s(attempt)
        if time.monotonic() + delay >= self.deadline:
            raise self._stop(_Stop(failed=True), error=error)
        with self._lock:
            if self._halt.is_set():
                raise _Cancelled
            self._note_error(error)
            self.record.retries += 1
        return delay

    def _stop(self, stop: _Stop, *, error: TikTokError | None = None, message: str = "") -> Exception:
        """The exception to raise: the first _Stop of the run (noted on the record), else _Cancelled."""
        with self._lock:
            if self._stopped is not None:
                return _Cancelled()
            self._stopped = stop
            self._halt.set()
            if error is not None:
                self._note_error(error)
            if message:
                self.record.message = message
            return stop

    def _note_answer(self, result) -> None:
        record = self.record
        if hasattr(result, "code"):  # a TikTokResponse; audience creation returns just the id
            record.code, record.message = result.code, (result.message or "OK")[:MESSAGE_LIMIT]
            record.request_id = result.request_id or ""
            record.response_text = (result.response_text or "")[:RESPONSE_TEXT_LIMIT]
        else:
            record.code, record.message = 0, "OK"

    def _note_error(self, error: TikTokError) -> None:
        record = self.record
        record.code = error.code
        record.message = str(error)[:MESSAGE_LIMIT]
        record.request_id = error.request_id or ""
        record.response_text = (error.response_text or "")[:RESPONSE_TEXT_LIMIT]

    def _fail_before_request(self, message: str) -> None:
        self.record.message = message[:MESSAGE_LIMIT]
        raise _Stop(failed=True)

    def _finish(self, *, failed: bool) -> AudienceSync:
        record = self.record
        now = timezone.now()
        record.finished_at = now
        record.ok = not failed
        if not failed and not record.message:
            record.message = "nothing to send" if record.requests == 0 else "OK"
        record.save()
        if failed:
            Audience.objects.filter(pk=self.audience.pk).update(last_error=record.message)
            logger.warning("Audience %s sync failed: %s", self.audience.pk, record.message)
        else:
            Audience.objects.filter(pk=self.audience.pk).update(last_synced_at=now, last_error="")
        return record
