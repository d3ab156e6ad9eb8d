"""Sending an audience's changes to TikTok: create it if needed, then only the pending members.

Guarantees:
- One run per audience at a time (a PostgreSQL advisory lock); a second one returns at once.
- Only changes are sent: pending_add members with action "add", pending_remove ones with "delete",
  in batches of AUDIENCE_SYNC_BATCH_SIZE, each request through the shared TikTok request limiter.
  An audience with nothing pending sends no request at all.
- A member is marked added / removed only after TikTok accepted its batch, and only if it is still in
  the state that was sent (a member removed meanwhile stays pending_remove and is deleted next time).
- Retryable answers (40100, 5xx, timeouts…) are retried with exponential backoff and jitter up to
  AUDIENCE_SYNC_MAX_ATTEMPTS times; then the run stops and its members stay pending for the next one.
  Other answers stop the run at once. Either way the run is recorded (AudienceSync) with TikTok's code
  and message, and the audience shows the error until a run succeeds.
"""

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audiences.membership import audience_lock, mark_sent, pending_batch, rule_refresh_members
from audiences.models import Audience, AudienceMember, AudienceSync
from audiences.tiktok import AudienceClient, client_for_pixel
from tiktok_ads.client import TikTokError
from tiktok_ads.limits import request_limiter
from tiktok_ads.models import Pixel

logger = logging.getLogger(__name__)
State = AudienceMember.State
ID_TYPES = (AudienceMember.IdType.EMAIL_SHA256, AudienceMember.IdType.PHONE_SHA256)
TOKEN_INVALID_CODE = 40105  # the pixel's token: flagged on the pixel, as the event sender does
LIMITER_WAIT_S = 5.0
MESSAGE_LIMIT = 500
RESPONSE_TEXT_LIMIT = 2000


class _Stop(Exception):
    """Ends a run early. failed=False: only time (or the rate limit) ran out, the next run goes on.
    permanent: TikTok refused for a reason a retry cannot fix."""

    def __init__(self, *, failed: bool, permanent: bool = False, token_rejected: bool = False):
        super().__init__()
        self.failed = failed
        self.permanent = permanent
        self.token_rejected = token_rejected


def backoff_s(attempt: int) -> float:
    """base · 2^(n-1), capped, times a random factor in [0.5, 1] so workers do not retry in step."""
    delay = min(settings.AUDIENCE_SYNC_RETRY_MAX_S, settings.AUDIENCE_SYNC_RETRY_BASE_S * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.0)


def audience_sync(
    *,
    audience_id: int,
    trigger: str = "beat",
    time_budget_s: float | None = None,
    client: AudienceClient | None = None,
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

    @property
    def client(self) -> AudienceClient:
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

        The batches go out one at a time, from one sender thread, but while a batch is on its way to TikTok
        this thread marks the one before and reads the one after: the database and TikTok work at the same
        time, which takes about a third off a large first sync. Only this thread touches the database.
        """
        after, in_flight = None, None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audience-sync") as sender:
            while True:
                batch = []
                if time.monotonic() < self.deadline:
                    batch = pending_batch(self.audience.pk, state, after=after, size=settings.AUDIENCE_SYNC_BATCH_SIZE)
                if in_flight is not None:
                    sent, answer = in_flight
                    answer.result()  # raises _Stop when TikTok refused it or time ran out
                    self._mark(sent, state, new_state, action)
                    in_flight = None
                if not batch:
                    if time.monotonic() >= self.deadline:
                        raise _Stop(failed=False)
                    return
                after = batch[-1][1:]
                in_flight = (batch, sender.submit(self._send_batch, batch, action))

    def _send_batch(self, batch: list[tuple], action: str):
        id_schema = [id_type for id_type in ID_TYPES if any(row[1] == id_type for row in batch)]
        rows = [[id_hash if id_type == column else None for column in id_schema] for _, id_type, id_hash in batch]
        return self._request(
            lambda: self.client.audience_members(
                advertiser_id=self.audience.pixel.advertiser_id,
                audience_id=self.audience.tiktok_audience_id,
                action=action,
                id_schema=id_schema,
                rows=rows,
            )
        )

    def _mark(self, batch: list[tuple], state: str, new_state: str, action: str) -> None:
        done = mark_sent([row[0] for row in batch], sent_state=state, new_state=new_state)
        if action == "add":
            self.record.added += done
        else:
            self.record.removed += done

    # --- one request, with retries ---

    def _request(self, call):
        attempt = 0
        while True:
            attempt += 1
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not self.limiter.acquire(timeout=min(LIMITER_WAIT_S, remaining)):
                self.record.message = "stopped: waiting for the TikTok request rate limit"
                raise _Stop(failed=False)
            self.record.requests += 1
            try:
                result = call()
            except TikTokError as error:
                self._note_error(error)
                if error.code == TOKEN_INVALID_CODE:
                    raise _Stop(failed=True, token_rejected=True) from None
                if not error.retryable:
                    raise _Stop(failed=True, permanent=True) from None
                if attempt >= settings.AUDIENCE_SYNC_MAX_ATTEMPTS:
                    raise _Stop(failed=True) from None
                delay = backoff_s(attempt)
                if time.monotonic() + delay >= self.deadline:
                    raise _Stop(failed=True) from None
                self.record.retries += 1
                time.sleep(delay)
                continue
            self._note_answer(result)
            return result

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
