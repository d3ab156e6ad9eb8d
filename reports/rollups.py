"""Background rollup of clicks, starts and conversions into the report tables (hour grain, UTC).

Clicks and bot starts are append-only: as in conversions/rollups.py, a cursor per table remembers
the last primary key counted, each refresh adds the rows after it (older than SETTLE_S, so a row
whose id was allocated before a neighbour's but committed after it is not skipped) with one
INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE per table, and the locked cursor row keeps
refreshes from overlapping.

Conversions change status and amount. Every change (and every new conversion) appends a
ConversionStatusChange row with the old and the new status and amount, and a cursor over that log adds
each change as two deltas: the conversion leaves its old status's row (minus one, minus the old amount)
and joins the new one's. A refresh therefore costs what changed since the last one, however many
conversions the hour or day already holds (recounting the touched hours and days instead cost 2 s of
PostgreSQL every 10 s at 25,000 conversions in the hour, and grew with every conversion). The reconcile
recounts a day by replaying its conversions' changes up to the cursor, which is what the refreshes
added up.
"""

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, NullIf, TruncDate, TruncHour
from django.utils import timezone

from conversions.models import BotStart, Click, Conversion, ConversionStatusChange, RollupCursor
from conversions.rollups import insert_select, step_end
from reports.models import (
    DETAIL_DIMENSIONS,
    ConversionDay,
    ConversionDetailHour,
    ConversionHour,
    DayZone,
    TimeToConversionDay,
    TrafficDay,
    TrafficDetailHour,
    TrafficHour,
)

SETTLE_S = 2
# A refresh commits after this many rows of each table: a backlog (a worker that was down) is caught
# up in steps that each fit well inside the task's time limit.
MAX_ROWS_PER_REFRESH = 50_000
APPROVED = Conversion.Status.APPROVED
CURSORS = {"clicks": "report_clicks", "starts": "report_starts", "conversions": "report_conversions"}
TRAFFIC_COUNTERS = ("clicks", "unique_clicks", "bot_hits", "landing_views", "starts")
CONVERSION_COUNTERS = ("conversions", "revenue_minor", "ttc_sum_s", "ttc_count")


def _dimensions(*, via_click: str, owner: str = "") -> dict:
    """The detailed dimensions of a row. `via_click` is the path to the click ("" on Click itself),
    `owner` the path to the row that has the link ("" when it is the row itself).

    utm_content falls back to the link's, so a link that carries it (rather than the visitor's URL)
    still groups by it. Rows without a click (a start or conversion through a plain utm_id) have
    empty dimensions.

    A start's or a conversion's click is read by its primary key, one subquery per dimension: joined, it
    could be read by a scan of every click for every row. PostgreSQL did that for the detailed starts on
    tables without statistics (autovacuum off: 17 million rows filtered for 300 starts among 63,000 clicks,
    11 s a step, growing until the task hit its time limit; tests/reports/test_traffic_rollup_plans.py).
    """
    if via_click:
        click_id = OuterRef(f"{via_click}_id")

        def of_click(name: str):
            return Subquery(Click.objects.filter(pk=click_id).values(name)[:1])
    else:
        of_click = F
    dimensions = {
        "r_utm_content": Coalesce(NullIf(of_click("utm_content"), Value("")), f"{owner}link__utm_content", Value("")),
    }
    for name in DETAIL_DIMENSIONS[1:]:
        dimensions[f"r_{name}"] = Coalesce(of_click(name), Value("")) if via_click else F(name)
    return dimensions


def _keys(*, via_click: str | None, day_zone: ZoneInfo | None = None, owner: str = "") -> dict:
    """Group keys: the UTC hour (or, with day_zone, the day of that zone), campaign, link, and the
    visitor's dimensions when `via_click` is not None. `owner`: the path to the row these belong to."""
    created_at = f"{owner}created_at"
    time = TruncDate(created_at, tzinfo=day_zone) if day_zone else TruncHour(created_at, tzinfo=UTC)
    keys = {"r_time": time, "r_campaign": F(f"{owner}campaign_id"), "r_link": F(f"{owner}link_id")}
    if via_click is not None:
        keys.update(_dimensions(via_click=via_click, owner=owner))
    return keys


def _click_counts(rows, *, detail: bool = False, day_zone: ZoneInfo | None = None):
    return (
        rows.values(**_keys(via_click="" if detail else None, day_zone=day_zone))
        .annotate(
            clicks=Count("id", filter=Q(is_bot=False)),
            unique_clicks=Count("id", filter=Q(is_bot=False, is_unique=True)),
            bot_hits=Count("id", filter=Q(is_bot=True)),
            landing_views=Count("id", filter=Q(served_landing=True)),
            starts=Value(0),
        )
        .order_by()
    )


def _start_counts(rows, *, detail: bool = False, day_zone: ZoneInfo | None = None):
    return (
        rows.values(**_keys(via_click="click" if detail else None, day_zone=day_zone))
        .annotate(clicks=Value(0), unique_clicks=Value(0), bot_hits=Value(0), landing_views=Value(0),
                  starts=Count("id"))
        .order_by()
    )  # fmt: skip


def _change_deltas(changes, *, entering: bool, detail: bool = False, day_zone: ZoneInfo | None = None):
    """What these status changes add to the conversion rows: with `entering`, each conversion joins its
    new status's row (with its new amount); otherwise it leaves its old status's row (a new conversion
    leaves none). An old amount that was not recorded is the new one."""
    if entering:
        status, amount, sign = F("new_status"), F("new_amount_minor"), 1
    else:
        status, amount, sign = F("old_status"), Coalesce("old_amount_minor", "new_amount_minor"), -1
        changes = changes.exclude(old_status="")
    via_click = "conversion__click" if detail else None
    return (
        changes.values(**_keys(via_click=via_click, day_zone=day_zone, owner="conversion__"),
                       r_goal=F("conversion__goal"), r_status=status)
        .annotate(
            conversions=Count("id") * sign,
            revenue_minor=Coalesce(Sum(amount), 0) * sign,
            ttc_sum_s=Coalesce(Sum("conversion__time_to_conversion_s"), 0) * sign,
            ttc_count=Count("conversion__time_to_conversion_s") * sign,
        )
        .order_by()
    )  # fmt: skip


def _insert_from(model, queryset, *, counters: tuple[str, ...], extra_keys: tuple[str, ...] = (), add: bool) -> None:
    """INSERT INTO model SELECT queryset; with `add`, a row that exists gets the counts added to it."""
    detail = model in (TrafficDetailHour, ConversionDetailHour)
    dimensions = DETAIL_DIMENSIONS if detail else ()
    time = "day" if model in (TrafficDay, ConversionDay) else "hour"
    selected = ["r_time", "r_campaign", "r_link", *(f"r_{name}" for name in (*dimensions, *extra_keys)), *counters]
    insert_select(
        model, queryset, columns=[time, "campaign_id", "link_id", *dimensions, *extra_keys, *counters],
        selected=[f"s.{name}" for name in selected],
        conflict=[time, "campaign_id", "COALESCE(link_id, 0)", *dimensions, *extra_keys] if add else None,
        added=counters,
    )  # fmt: skip


def _add_traffic(counts, rows) -> None:
    for model, detail in ((TrafficHour, False), (TrafficDetailHour, True)):
        _insert_from(model, counts(rows, detail=detail), counters=TRAFFIC_COUNTERS, add=True)
    zone = day_tables_zone()
    if zone is not None:
        _insert_from(TrafficDay, counts(rows, day_zone=zone), counters=TRAFFIC_COUNTERS, add=True)


# --- the day tables ------------------------------------------------------------------------------


def day_tables_zone() -> ZoneInfo | None:
    """The zone of REPORT_TIME_ZONE when the day tables hold its days; None while they hold another
    zone's (REPORT_TIME_ZONE changed: reports read the hours until `report_rollup_rebuild`).
    Empty day tables take the current zone."""
    wanted = settings.REPORT_TIME_ZONE
    held = DayZone.objects.values_list("tz", flat=True).first()
    if held is None and not TrafficDay.objects.exists() and not ConversionDay.objects.exists():
        DayZone.objects.get_or_create(pk=1, defaults={"tz": wanted})
        held = wanted
    return ZoneInfo(wanted) if held == wanted else None


def _add_ttc_samples(changes, zone: ZoneInfo) -> None:
    """Append, per day, campaign and link, the times to conversion these changes made approved or took
    out of approved (see TimeToConversionDay)."""
    added, removed = defaultdict(Counter), defaultdict(Counter)
    rows = (
        changes.filter(Q(new_status=APPROVED) | Q(old_status=APPROVED), conversion__time_to_conversion_s__isnull=False)
        .annotate(local_day=TruncDate("conversion__created_at", tzinfo=zone))
        .values_list("local_day", "conversion__campaign_id", "conversion__link_id",
                     "conversion__time_to_conversion_s", "old_status", "new_status")
        .order_by()
    )  # fmt: skip
    for day, campaign_id, link_id, ttc, old_status, new_status in rows:
        if old_status == new_status:
            continue  # an amount changed: the time stays where it was
        (added if new_status == APPROVED else removed)[(day, campaign_id, link_id)][ttc] += 1
    chunks = []
    for key in {**added, **removed}:
        both = added[key] & removed[key]  # approved and taken back within these changes: neither
        values, taken_out = added[key] - both, removed[key] - both
        if values or taken_out:
            day, campaign_id, link_id = key
            chunks.append(TimeToConversionDay(day=day, campaign_id=campaign_id, link_id=link_id,
                                              values_s=",".join(map(str, values.elements())),
                                              removed_s=",".join(map(str, taken_out.elements()))))  # fmt: skip
    TimeToConversionDay.objects.bulk_create(chunks, batch_size=2000)


def _apply_changes(changes, *, hours: bool, day_zone: ZoneInfo | None) -> None:
    """Add these status changes to the hour tables (`hours`) and to the day tables of `day_zone` (if
    given); rows left with nothing in them are removed."""
    deltas = ((ConversionHour, False, None), (ConversionDetailHour, True, None)) if hours else ()
    if day_zone is not None:
        deltas += ((ConversionDay, False, day_zone),)
    for model, detail, zone in deltas:
        for entering in (True, False):
            _insert_from(model, _change_deltas(changes, entering=entering, detail=detail, day_zone=zone),
                         counters=CONVERSION_COUNTERS, extra_keys=("goal", "status"), add=True)  # fmt: skip
    empty = Q(conversions=0, revenue_minor=0, ttc_sum_s=0, ttc_count=0)
    if hours:
        touched = changes.annotate(t=TruncHour("conversion__created_at", tzinfo=UTC)).values("t").distinct()
        for model in (ConversionHour, ConversionDetailHour):
            model.objects.filter(empty, hour__in=touched.order_by()).delete()
    if day_zone is not None:
        touched = changes.annotate(t=TruncDate("conversion__created_at", tzinfo=day_zone)).values("t").distinct()
        ConversionDay.objects.filter(empty, day__in=touched.order_by()).delete()
        _add_ttc_samples(changes, day_zone)


def report_rollup_rebuild_days() -> None:
    """Rebuild the day tables for the current REPORT_TIME_ZONE from the raw rows up to the cursors."""
    zone = ZoneInfo(settings.REPORT_TIME_ZONE)
    with transaction.atomic():
        clicks_upto = _locked_cursor(CURSORS["clicks"]).last_id
        starts_upto = _locked_cursor(CURSORS["starts"]).last_id
        TrafficDay.objects.all().delete()
        ConversionDay.objects.all().delete()
        TimeToConversionDay.objects.all().delete()
        DayZone.objects.update_or_create(pk=1, defaults={"tz": settings.REPORT_TIME_ZONE})
        for counts, model, upto in ((_click_counts, Click, clicks_upto), (_start_counts, BotStart, starts_upto)):
            _insert_from(TrafficDay, counts(model.objects.filter(id__lte=upto), day_zone=zone),
                         counters=TRAFFIC_COUNTERS, add=True)  # fmt: skip
        conversions_upto = _locked_cursor(CURSORS["conversions"]).last_id
        _apply_changes(ConversionStatusChange.objects.filter(id__lte=conversions_upto), hours=False, day_zone=zone)


def _locked_cursor(name: str, *, wait: bool = True) -> RollupCursor | None:
    """The cursor row, locked for this transaction. Without `wait`, None when another refresh holds it
    (that refresh is doing the work already)."""
    RollupCursor.objects.get_or_create(name=name)
    return RollupCursor.objects.select_for_update(skip_locked=not wait).filter(name=name).first()


def _replay_changes(*, start: datetime, end: datetime, hours: bool, day_zone: ZoneInfo | None) -> None:
    """Recount the conversions made in [start, end): replay their changes up to the cursor (what the
    refreshes have added), after the caller removed the range's rows. Holds the conversions cursor."""
    upto = _locked_cursor(CURSORS["conversions"]).last_id
    changes = ConversionStatusChange.objects.filter(
        id__lte=upto, conversion__created_at__gte=start, conversion__created_at__lt=end
    )
    _apply_changes(changes, hours=hours, day_zone=day_zone)


def _lookups_by_index() -> None:
    """For the rest of this transaction, go from the few rows of a refresh's step to their conversions, clicks
    and links through primary keys, one row at a time, the step's table first. On tables without statistics
    yet (a new install's first busy day) PostgreSQL read whole tables instead: 20 ms of conversions and 90 ms
    of clicks for 550 changes among 25,000 conversions, growing with the tables. (A reconcile, which reads a
    whole day, is left to the planner: there whole-table hash joins were 3 times faster.)"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SET LOCAL join_collapse_limit = 1; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;"
                " SET LOCAL enable_seqscan = off; SET LOCAL enable_material = off"
            )


def _refresh_appended(name: str, model, counts, settled_before: datetime) -> int:
    with transaction.atomic():
        _lookups_by_index()
        cursor = _locked_cursor(CURSORS[name], wait=False)
        if cursor is None:
            return 0
        upper = step_end(model.objects.filter(id__gt=cursor.last_id, created_at__lt=settled_before),
                         MAX_ROWS_PER_REFRESH)  # fmt: skip
        if upper is None:
            return 0
        new_rows = model.objects.filter(id__gt=cursor.last_id, id__lte=upper)
        _add_traffic(counts, new_rows)
        counted = new_rows.count()
        cursor.last_id = upper
        cursor.save(update_fields=["last_id", "updated_at"])
        return counted


def _refresh_conversions(settled_before: datetime) -> int:
    with transaction.atomic():
        _lookups_by_index()
        cursor = _locked_cursor(CURSORS["conversions"], wait=False)
        if cursor is None:
            return 0
        changes = ConversionStatusChange.objects.filter(id__gt=cursor.last_id, created_at__lt=settled_before)
        upper = step_end(changes, MAX_ROWS_PER_REFRESH)
        if upper is None:
            return 0
        changed = ConversionStatusChange.objects.filter(id__gt=cursor.last_id, id__lte=upper)
        _apply_changes(changed, hours=True, day_zone=day_tables_zone())
        cursor.last_id = upper
        cursor.save(update_fields=["last_id", "updated_at"])
        return changed.count()


def report_rollup_refresh() -> dict[str, int]:
    """Bring the report tables up to date. Returns how many clicks, starts and conversion changes it read."""
    settled_before = timezone.now() - timedelta(seconds=SETTLE_S)
    return {
        "clicks": _refresh_appended("clicks", Click, _click_counts, settled_before),
        "starts": _refresh_appended("starts", BotStart, _start_counts, settled_before),
        "conversions": _refresh_conversions(settled_before),
    }


RECONCILED_MODELS = (Click, BotStart, Conversion, ConversionStatusChange)


def _gather_missing_statistics() -> None:
    """ANALYZE the raw tables PostgreSQL has no statistics for yet (a new install, or autovacuum off).
    Without them the planner took a whole day's changes, conversions and clicks for a few rows each and
    joined them by a nested loop over all the clicks: the reconcile of an hour of 10,000 conversions took
    13.6 s and one of 100,000 did not end in 10 minutes (bench/conversion_rollup.py). Analyzing the four
    tables at 100,000 rows each takes about a second, once."""
    if connection.vendor != "postgresql":
        return
    tables = [model._meta.db_table for model in RECONCILED_MODELS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE oid = ANY(%s::regclass[]) AND reltuples < 0", [tables])
        for (table,) in cursor.fetchall():
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")


def report_rollup_reconcile(*, day: date) -> None:
    """Recount one UTC day from the raw rows (up to the cursors), replacing what the refreshes added."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    _gather_missing_statistics()
    with transaction.atomic():
        clicks_upto = _locked_cursor(CURSORS["clicks"]).last_id
        starts_upto = _locked_cursor(CURSORS["starts"]).last_id
        for model in (TrafficHour, TrafficDetailHour):
            model.objects.filter(hour__gte=start, hour__lt=end).delete()
        in_day = Q(created_at__gte=start, created_at__lt=end)
        _add_traffic(_click_counts, Click.objects.filter(in_day, id__lte=clicks_upto))
        _add_traffic(_start_counts, BotStart.objects.filter(in_day, id__lte=starts_upto))
    with transaction.atomic():
        for model in (ConversionHour, ConversionDetailHour):
            model.objects.filter(hour__gte=start, hour__lt=end).delete()
        _replay_changes(start=start, end=end, hours=True, day_zone=None)
    zone = day_tables_zone()
    if zone is not None:
        # The day of the same date in REPORT_TIME_ZONE, recounted whole.
        local_start = datetime.combine(day, datetime.min.time(), tzinfo=zone)
        local_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        with transaction.atomic():
            clicks_upto = _locked_cursor(CURSORS["clicks"]).last_id
            starts_upto = _locked_cursor(CURSORS["starts"]).last_id
            TrafficDay.objects.filter(day=day).delete()
            in_local_day = Q(created_at__gte=local_start, created_at__lt=local_end)
            for counts, model, upto in ((_click_counts, Click, clicks_upto), (_start_counts, BotStart, starts_upto)):
                _insert_from(TrafficDay, counts(model.objects.filter(in_local_day, id__lte=upto), day_zone=zone),
                             counters=TRAFFIC_COUNTERS, add=True)  # fmt: skip
            ConversionDay.objects.filter(day=day).delete()
            TimeToConversionDay.objects.filter(day=day).delete()
            _replay_changes(start=local_start, end=local_end, hours=False, day_zone=zone)


def rolled_up_until() -> datetime | None:
    """When the report tables were last brought up to date (the clicks cursor's last move)."""
    cursor = RollupCursor.objects.filter(name=CURSORS["clicks"]).first()
    return cursor.updated_at if cursor else None
