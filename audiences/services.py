"""Writes for audiences: create them, change their members (API, customer files, rules), queue syncs.

Sending to TikTok is audiences.sync; the set-based SQL is audiences.membership; reading CSV is
audiences.customer_files. Every function here takes keyword arguments and does one thing.
"""

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audiences.customer_files import FileProblem, ReadReport, read_ahead, read_ids, text_stream
from audiences.membership import (
    COPY_BLOCK,
    Changes,
    StagedIds,
    append_while_reading,
    audience_lock,
    copy_blocks,
    members_analyze,
    rule_refresh_members,
)
from audiences.models import Audience, AudienceMember, AudienceSync, CustomerFileImport
from conversions.models import Campaign
from tiktok_ads.models import Pixel

logger = logging.getLogger(__name__)
Kind = Audience.Kind
Mode = CustomerFileImport.Mode
NO_OP_SYNC_HISTORY = timedelta(days=7)
STALE_QUEUED_IMPORT = timedelta(minutes=10)  # its broker message was lost
STALE_RUNNING_IMPORT = timedelta(hours=1)  # its worker died (the import is one transaction: redo it)
ANALYZE_AFTER_CHANGES = 50_000  # members changed by one file: refresh the planner's statistics
# Ids of a file inserted per statement while the next ones are read: about 25 MB of COPY text each, at most
# three at a time. Fewer, larger statements insert faster (each one walks the whole unique index).
FILE_CHUNK_IDS = 300_000


class AudienceRefused(Exception):
    """A change an audience does not allow; `field` names the input to blame."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class RuleParams:
    event: str = "CompletePayment"
    goal: str = ""
    min_purchases: int = 1
    min_value_minor: int | None = None
    campaign: Campaign | None = None
    within_days: int | None = None


@dataclass(frozen=True)
class LookalikeParams:
    source: Audience
    audience_size: str = Audience.LookalikeSize.BALANCED
    location_ids: tuple[str, ...] = ()
    include_source: bool = False


# --- checks shared by the API and the admin ------------------------------------------------------


def rule_problems(*, pixel: Pixel | None, event: str, goal: str) -> dict[str, str]:
    """A rule whose event the pixel maps from no goal would stay empty forever: say so up front."""
    if pixel is None or not event or goal or event == "CompleteRegistration":
        return {}
    mapped = sorted({mapped_event for mapped_event in (pixel.goal_events or {}).values()})
    if event not in mapped:
        return {
            "event": f"The pixel maps no conversion goal to {event} (its goal_events map goals to: "
            f"{', '.join(mapped) or 'nothing'}); name a goal instead, or add one to the pixel."
        }
    return {}


def lookalike_problems(*, source: Audience | None, pixel: Pixel | None) -> dict[str, str]:
    if source is None:
        return {"source": "A lookalike needs a source audience."}
    if source.kind == Kind.LOOKALIKE:
        return {"source": "The source must not itself be a lookalike (TikTok refuses it)."}
    if pixel is not None and source.pixel.advertiser_id != pixel.advertiser_id:
        return {"source": "The source belongs to another advertiser."}
    return {}


def pixel_problems(pixel: Pixel) -> dict[str, str]:
    if not pixel.advertiser_id:
        return {"advertiser_id": f"Pixel {pixel} has no advertiser_id: set it on the pixel first."}
    return {}


# --- creating -----------------------------------------------------------------------------------


def audience_create(
    *,
    pixel: Pixel,
    name: str,
    kind: str,
    is_exclusion: bool = False,
    auto_sync: bool = True,
    rule: RuleParams | None = None,
    lookalike: LookalikeParams | None = None,
) -> Audience:
    """Store an audience and queue its first sync, which creates it at TikTok (and fills a rule audience).

    Raises AudienceRefused (naming the input) for a pixel without advertiser id, a rule event the pixel
    maps from no goal, or a lookalike without a source or of another lookalike.
    """
    for field, message in pixel_problems(pixel).items():
        raise AudienceRefused(field, message)
    audience = Audience(pixel=pixel, name=name, kind=kind, is_exclusion=is_exclusion, auto_sync=auto_sync)
    if kind == Kind.RULE:
        rule = rule or RuleParams()
        for field, message in rule_problems(pixel=pixel, event=rule.event, goal=rule.goal).items():
            raise AudienceRefused(f"rule.{field}", message)
        audience.rule_event = rule.event
        audience.rule_goal = rule.goal
        audience.rule_min_purchases = rule.min_purchases
        audience.rule_min_value_minor = rule.min_value_minor
        audience.rule_campaign = rule.campaign
        audience.rule_within_days = rule.within_days
    else:
        audience.rule_event = ""
    if kind == Kind.LOOKALIKE:
        if lookalike is None:
            raise AudienceRefused("source", "A lookalike needs a source audience.")
        for field, message in lookalike_problems(source=lookalike.source, pixel=pixel).items():
            raise AudienceRefused(field, message)
        audience.lookalike_source = lookalike.source
        audience.lookalike_size = lookalike.audience_size
        audience.lookalike_location_ids = list(lookalike.location_ids)
        audience.lookalike_include_source = lookalike.include_source
    with transaction.atomic():
        audience.save()
        sync_queue(audience_id=audience.pk, trigger="create")
    return audience


def lookalike_create(
    *,
    source: Audience,
    name: str,
    audience_size: str,
    location_ids: list[str],
    include_source: bool = False,
) -> Audience:
    """A lookalike of `source` (same pixel); TikTok needs the source created there first."""
    if source.kind == Kind.LOOKALIKE:
        raise AudienceRefused("audience_id", "The source must not itself be a lookalike (TikTok refuses it).")
    if not source.tiktok_audience_id:
        raise AudienceRefused("audience_id", "The source audience is not at TikTok yet: sync it first.")
    params = LookalikeParams(
        source=source, audience_size=audience_size, location_ids=tuple(location_ids), include_source=include_source
    )
    return audience_create(pixel=source.pixel, name=name, kind=Kind.LOOKALIKE, lookalike=params)


# --- members ------------------------------------------------------------------------------------


def _members_editable(audience: Audience, field: str) -> None:
    if audience.kind == Kind.RULE:
        raise AudienceRefused(field, "A rule audience's members come from its rule; change the rule instead.")
    if audience.kind == Kind.LOOKALIKE:
        raise AudienceRefused(field, "TikTok fills a lookalike audience itself.")


def audience_members_change(*, audience: Audience, action: str, ids: list[tuple[str, str]]) -> Changes:
    """APPEND: these hashed ids become pending_add; REMOVE: pending_remove. Then a sync is queued.

    `ids` are (EMAIL_SHA256 | PHONE_SHA256, 64-hex) pairs, already validated and hashed.
    """
    _members_editable(audience, "members")
    with transaction.atomic(), connection.cursor() as cursor, StagedIds(cursor) as staged:
        staged.write(ids)
        changes = staged.apply_append(audience.pk) if action == "APPEND" else staged.apply_remove(audience.pk)
        sync_queue(audience_id=audience.pk, trigger="api")
    return changes


def customer_file_import(
    *, audience: Audience, binary_file, filename: str, mode: str = Mode.APPEND, default_region: str = ""
) -> CustomerFileImport:
    """Read a CSV into the audience now (one transaction: all of it, or nothing when the file is broken)."""
    _members_editable(audience, "file")
    record = CustomerFileImport.objects.create(
        audience=audience,
        filename=filename[:255],
        mode=mode,
        default_region=default_region.upper(),
        status=CustomerFileImport.Status.RUNNING,
        started_at=timezone.now(),
    )
    return _import(record, binary_file)


def customer_file_queue(
    *, audience: Audience, uploaded_file, filename: str, mode: str = Mode.APPEND, default_region: str = ""
) -> CustomerFileImport:
    """Keep a large upload on disk for a worker (import_customer_file); it is deleted after the import."""
    _members_editable(audience, "file")
    upload_dir = Path(settings.AUDIENCE_UPLOAD_DIR)
    upload_dir.mkdir(parents=True, exist_ok=True)
    path = upload_dir / f"{uuid.uuid4().hex}.csv"
    # Raw emails and phones: readable by this user only, and only until the import has read them.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stored:
        if hasattr(uploaded_file, "chunks"):
            for chunk in uploaded_file.chunks():
                stored.write(chunk)
        else:
            shutil.copyfileobj(uploaded_file, stored)
    try:
        with transaction.atomic():
            record = CustomerFileImport.objects.create(
                audience=audience,
                filename=filename[:255],
                mode=mode,
                default_region=default_region.upper(),
                stored_path=str(path),
            )
            transaction.on_commit(lambda: _queue_import(record.pk))
    except Exception:
        path.unlink(missing_ok=True)
        raise
    return record


def customer_file_import_stored(*, import_id: int) -> CustomerFileImport | None:
    """The worker's side of customer_file_queue. Claimed with a conditional UPDATE: a redelivered task
    finds the import taken and does nothing."""
    claimed = CustomerFileImport.objects.filter(pk=import_id, status=CustomerFileImport.Status.QUEUED).update(
        status=CustomerFileImport.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    record = CustomerFileImport.objects.select_related("audience").get(pk=import_id)
    path = Path(record.stored_path)
    try:
        with open(path, "rb") as binary_file:
            return _import(record, binary_file)
    except FileNotFoundError:
        record.status = CustomerFileImport.Status.FAILED
        record.message = "The uploaded file is gone (AUDIENCE_UPLOAD_DIR must be shared by web and workers)."
        record.finished_at = timezone.now()
        record.save()
        return record
    finally:
        path.unlink(missing_ok=True)
        CustomerFileImport.objects.filter(pk=import_id).update(stored_path="")


def _import(record: CustomerFileImport, binary_file) -> CustomerFileImport:
    report = ReadReport()
    audience_id = record.audience_id
    text_file = text_stream(binary_file)
    try:
        ids = read_ids(text_file, report, default_region=record.default_region or None)
        with transaction.atomic(), connection.cursor() as cursor, StagedIds(cursor) as staged:
            changed = removed = 0
            if record.mode == Mode.REMOVE:
                staged.write(ids)
                changed = staged.apply_remove(audience_id).to_remove
            else:
                with read_ahead(copy_blocks(ids, COPY_BLOCK), max(1, FILE_CHUNK_IDS // COPY_BLOCK)) as chunks:
                    keep = record.mode == Mode.REPLACE
                    changed = append_while_reading(staged, audience_id, chunks, keep=keep).to_add
                if record.mode == Mode.REPLACE and staged.count:
                    removed = staged.apply_remove(audience_id, keep_staged=True).to_remove
            record.ids_changed, record.ids_removed = changed, removed
            record.duplicates = staged.count - changed
            record.status = CustomerFileImport.Status.DONE
            if record.mode == Mode.REPLACE and not staged.count:
                record.message = "No valid id in the file: nobody was replaced."
            _finish_import(record, report)
            sync_queue(audience_id=audience_id, trigger="import")
    except FileProblem as problem:
        record.status = CustomerFileImport.Status.FAILED
        record.message = f"Nothing imported: {problem}"[:500]
        _finish_import(record, report)
    except Exception:
        record.status = CustomerFileImport.Status.FAILED
        record.message = "Nothing imported: internal error (see the logs)"
        _finish_import(record, report)
        raise
    finally:
        text_file.detach()  # the caller owns the binary file
    if record.ids_changed + record.ids_removed >= ANALYZE_AFTER_CHANGES:
        members_analyze()
    return record


def _finish_import(record: CustomerFileImport, report: ReadReport) -> None:
    record.columns = report.columns
    record.rows_total, record.rows_ok, record.rows_bad = report.rows_total, report.rows_ok, report.rows_bad
    record.ids_total = report.ids_total
    record.errors_total, record.errors = report.errors_total, report.errors
    record.finished_at = timezone.now()
    record.save()


def customer_file_requeue_stale() -> int:
    """Queue again the stored imports whose task was lost (broker) or whose worker died."""
    now = timezone.now()
    Status = CustomerFileImport.Status
    CustomerFileImport.objects.filter(status=Status.RUNNING, started_at__lt=now - STALE_RUNNING_IMPORT).exclude(
        stored_path=""
    ).update(status=Status.QUEUED)
    stale = list(
        CustomerFileImport.objects.filter(status=Status.QUEUED, created_at__lt=now - STALE_QUEUED_IMPORT)
        .exclude(stored_path="")
        .values_list("pk", flat=True)
    )
    for import_id in stale:
        _queue_import(import_id)
    return len(stale)


# --- rules, syncs -------------------------------------------------------------------------------


def rule_refresh(*, audience: Audience) -> Changes | None:
    """Recompute a rule audience's members now (the sync does it too). None while a sync holds it."""
    with audience_lock(audience.pk) as held:
        if not held:
            return None
        with transaction.atomic():
            changes = rule_refresh_members(audience)
            Audience.objects.filter(pk=audience.pk).update(last_refreshed_at=timezone.now())
    return changes


def audience_recreate(*, audience: Audience) -> bool:
    """Forget the TikTok audience (deleted there, or another advertiser): the next sync creates a new one
    and sends every current member again. False while a sync holds the audience."""
    with audience_lock(audience.pk) as held:
        if not held:
            return False
        with transaction.atomic():
            members = AudienceMember.objects.filter(audience=audience)
            members.filter(state=AudienceMember.State.ADDED).update(
                state=AudienceMember.State.PENDING_ADD, changed_at=timezone.now()
            )
            members.filter(state__in=[AudienceMember.State.PENDING_REMOVE, AudienceMember.State.REMOVED]).delete()
            Audience.objects.filter(pk=audience.pk).update(
                tiktok_audience_id="", status=Audience.Status.NEW, last_error=""
            )
            sync_queue(audience_id=audience.pk, trigger="admin")
    return True


def sync_queue(*, audience_id: int, trigger: str) -> None:
    """Ask a worker to sync the audience once the current transaction commits. Never raises: the beat
    job syncs every auto-sync audience anyway."""

    def send():
        from audiences.tasks import sync_audience

        try:
            sync_audience.apply_async(args=[audience_id, trigger], retry=False)
        except Exception:  # noqa: BLE001 - the broker may be down; the changes are safe in PostgreSQL
            logger.warning("Could not queue a sync of audience %s; the beat job will send it", audience_id)

    transaction.on_commit(send)


def _queue_import(import_id: int) -> None:
    from audiences.tasks import import_customer_file

    try:
        import_customer_file.apply_async(args=[import_id], retry=False)
    except Exception:  # noqa: BLE001 - the sweep in sync_all queues it again
        logger.warning("Could not queue customer file import %s; the beat job will retry", import_id)


def audience_syncs_prune() -> int:
    """Runs that changed and sent nothing are kept a week; every other run is kept."""
    cutoff = timezone.now() - NO_OP_SYNC_HISTORY
    deleted, _ = AudienceSync.objects.filter(
        started_at__lt=cutoff, ok=True, requests=0, rule_added=0, rule_removed=0
    ).delete()
    return deleted
