"""Background rollup of clicks, starts and conversions into the report tables (hour grain, UTC).

Clicks and bot starts are append-only: as in conversions/rollups.py, a cursor per table remembers
the last primary key counted, each refresh adds the rows after it (older than SETTLE_S, so a row
whose id was allocated before a neighbour's but committed after it is not skipped) with one
INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE per table, and the locked cursor row keeps
refreshes from overlapping.

Conversions change status and amount, so they are not added up but recounted: every change (and
every new conversion) appends a ConversionStatusChange row; a cursor over those finds the hours in
which changed conversions happened, and each such hour is recounted from the conversions table.
"""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import Coalesce, NullIf, TruncDate, TruncHour
from django.utils import timezone

from conversions.models import BotStart, Click, Conversion, ConversionStatusChange, RollupCursor
from conversions.rollups import step_end
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
CURSORS = {"clicks": "report_clicks", "starts": "report_starts", "conversions": "report_conversions"}
TRAFFIC_COUNTERS = ("clicks", "unique_clicks", "bot_hits", "landing_views", "starts")
CONVERSION_COUNTERS = ("conversions", "revenue_minor", "ttc_sum_s", "ttc_count")


def _dimensions(*, via_click: str) -> dict:
    """The detailed dimensions of a row. `via_click` is the path to the click ("" on Click itself).

    utm_content falls back to the link's, so a link that carries it (rather than the visitor's URL)
    still groups by it. Rows without a click (a start or conversion through a plain utm_id) have
    empty dimensions.
    """
    prefix = f"{via_click}__" if via_click else ""
    dimensions = {
        "r_utm_content": Coalesce(NullIf(f"{prefix}utm_content", Value("")), "link__utm_content", Value("")),
    }
    for name in DETAIL_DIMENSIONS[1:]:
        dimensions[f"r_{name}"] = Coalesce(f"{prefix}{name}", Value("")) if via_click else F(name)
    return dimensions


def _keys(*, via_click: str | None, day_zone: ZoneInfo | None = None) -> dict:
    """Group keys: the UTC hour (or, with day_zone, the day of that zone), campaign, link, and the
    visitor's dimensions when `via_click` is not None."""
    time = TruncDate("created_at", tzinfo=day_zone) if day_zone else TruncHour("created_at", tzinfo=UTC)
    keys = {"r_time": time, "r_campaign": F("campaign_id"), "r_link": F("link_id")}
    if via_click is not None:
        keys.update(_dimensions(via_click=via_click))
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


def _conversion_counts(rows, *, detail: bool):
    return (
        rows.values(**_keys(via_click="click" if detail else None), r_goal=F("goal"), r_status=F("status"))
        .annotate(
            conversions=Count("id"),
            revenue_minor=Coalesce(Sum("amount_minor"), 0),
            ttc_sum_s=Coalesce(Sum("time_to_conversion_s"), 0),
            ttc_count=Count("time_to_conversion_s"),
        )
        .order_by()
    )


def _insert_from(model, queryset, *, counters: tuple[str, ...], extra_keys: tuple[str, ...] = (), add: bool) -> None:
    """INSERT INTO model SELECT queryset; with `add`, a row that exists gets the counts added to it."""
    detail = model in (TrafficDetailHour, ConversionDetailHour)
    dimensions = DETAIL_DIMENSIONS if detail else ()
    time = "day" if model is TrafficDay else "hour"
    columns = [time, "campaign_id", "link_id", *dimensions, *extra_keys, *counters]
    selected = ["r_time", "r_campaign", "r_link", *(f"r_{name}" for name in (*dimensions, *extra_keys)), *counters]
    sql, params = queryset.query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    statement = f"INSERT INTO {table} ({quoted}) SELECT {', '.join(f's.{name}' for name in selected)} FROM ({sql}) s"
    if add:
        # "WHERE true": SQLite needs it to tell ON CONFLICT from a join's ON.
        target = ", ".join([time, "campaign_id", "COALESCE(link_id, 0)", *dimensions])
        updates = ", ".join(f"{name} = {table}.{name} + EXCLUDED.{name}" for name in counters)
        statement += f" WHERE true ON CONFLICT ({target}) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


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


def _recount_conversion_days(days: set[date], zone: ZoneInfo) -> None:
    """Replace the ConversionDay rows of these days with a fresh count (and the raw times to conversion)."""
    if not days:
        return
    ConversionDay.objects.filter(day__in=days).delete()
    TimeToConversionDay.objects.filter(day__in=days).delete()
    first = datetime.combine(min(days), datetime.min.time(), tzinfo=zone)
    last = datetime.combine(max(days) + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    rows, times = {}, defaultdict(list)
    for day, campaign_id, link_id, goal, status, amount_minor, ttc in (
        Conversion.objects.filter(created_at__gte=first, created_at__lt=last)
        .annotate(local_day=TruncDate("created_at", tzinfo=zone))
        .filter(local_day__in=days)
        .values_list("local_day", "campaign_id", "link_id", "goal", "status", "amount_minor", "time_to_conversion_s")
        .order_by()
    ):
        key = (day, campaign_id, link_id, goal, status)
        if key not in rows:
            rows[key] = ConversionDay(day=day, campaign_id=campaign_id, link_id=link_id, goal=goal, status=status)
        row = rows[key]
        row.conversions += 1
        row.revenue_minor += amount_minor
        if ttc is not None:
            row.ttc_sum_s += ttc
            row.ttc_count += 1
            if status == Conversion.Status.APPROVED:
                times[(day, campaign_id, link_id)].append(ttc)
    ConversionDay.objects.bulk_create(rows.values(), batch_size=2000)
    TimeToConversionDay.objects.bulk_create(
        (TimeToConversionDay(day=day, campaign_id=campaign_id, link_id=link_id,
                             values_s=",".join(map(str, values)))
         for (day, campaign_id, link_id), values in times.items()),
        batch_size=2000,
    )  # fmt: skip


def report_rollup_rebuild_days() -> None:
    """Rebuild the day tables for the current REPORT_TIME_ZONE from the raw rows up to the cursors."""
    zone = ZoneInfo(settings.REPORT_TIME_ZONE)
    with transaction.atomic():
        clicks_upto = _locked_cursor(CURSORS["clicks"]).last_id
        starts_upto = _locked_cursor(CURSORS["starts"]).last_id
        _locked_cursor(CURSORS["conversions"])
        TrafficDay.objects.all().delete()
        ConversionDay.objects.all().delete()
        TimeToConversionDay.objects.all().delete()
        DayZone.objects.update_or_create(pk=1, defaults={"tz": settings.REPORT_TIME_ZONE})
        for counts, model, upto in ((_click_counts, Click, clicks_upto), (_start_counts, BotStart, starts_upto)):
            _insert_from(TrafficDay, counts(model.objects.filter(id__lte=upto), day_zone=zone),
                         counters=TRAFFIC_COUNTERS, add=True)  # fmt: skip
        days = set(
            Conversion.objects.annotate(local_day=TruncDate("created_at", tzinfo=zone))
            .values_list("local_day", flat=True).distinct().order_by()
        )  # fmt: skip
        _recount_conversion_days(days, zone)


def _locked_cursor(name: str, *, wait: bool = True) -> RollupCursor | None:
    """The cursor row, locked for this transaction. Without `wait`, None when another refresh holds it
    (that refresh is doing the work already)."""
    RollupCursor.objects.get_or_create(name=name)
    return RollupCursor.objects.select_for_update(skip_locked=not wait).filter(name=name).first()


def _recount_conversion_hours(hours: set[datetime]) -> None:
    """Replace the conversion rows of these UTC hours with a fresh count from the conversions table."""
    if not hours:
        return
    hours = sorted(hours)
    # The range bounds the scan (created_at is indexed); the hour list picks the hours inside it.
    in_hours = Conversion.objects.filter(created_at__gte=hours[0], created_at__lt=hours[-1] + timedelta(hours=1))
    if len(hours) < (hours[-1] - hours[0]) / timedelta(hours=1) + 1:
        in_hours = in_hours.annotate(utc_hour=TruncHour("created_at", tzinfo=UTC)).filter(utc_hour__in=hours)
    for model, detail in ((ConversionHour, False), (ConversionDetailHour, True)):
        model.objects.filter(hour__in=hours).delete()
        counts = _conversion_counts(in_hours, detail=detail)
        _insert_from(model, counts, counters=CONVERSION_COUNTERS, extra_keys=("goal", "status"), add=False)


def _refresh_appended(name: str, model, counts, settled_before: datetime) -> int:
    with transaction.atomic():
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
        cursor = _locked_cursor(CURSORS["conversions"], wait=False)
        if cursor is None:
            return 0
        changes = ConversionStatusChange.objects.filter(id__gt=cursor.last_id, created_at__lt=settled_before)
        upper = step_end(changes, MAX_ROWS_PER_REFRESH)
        if upper is None:
            return 0
        changed = ConversionStatusChange.objects.filter(id__gt=cursor.last_id, id__lte=upper)
        touched = Conversion.objects.filter(status_changes__in=changed)
        hours = set(
            touched.annotate(hour=TruncHour("created_at", tzinfo=UTC)).values_list("hour", flat=True).distinct()
        )
        _recount_conversion_hours(hours)
        zone = day_tables_zone()
        if zone is not None:
            days = set(
                touched.annotate(day=TruncDate("created_at", tzinfo=zone)).values_list("day", flat=True).distinct()
            )
            _recount_conversion_days(days, zone)
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


def report_rollup_reconcile(*, day: date) -> None:
    """Recount one UTC day from the raw rows (up to the cursors), replacing what the refreshes added."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    with transaction.atomic():
        clicks_upto = _locked_cursor(CURSORS["clicks"]).last_id
        starts_upto = _locked_cursor(CURSORS["starts"]).last_id
        for model in (TrafficHour, TrafficDetailHour):
            model.objects.filter(hour__gte=start, hour__lt=end).delete()
        in_day = Q(created_at__gte=start, created_at__lt=end)
        _add_traffic(_click_counts, Click.objects.filter(in_day, id__lte=clicks_upto))
        _add_traffic(_start_counts, BotStart.objects.filter(in_day, id__lte=starts_upto))
    with transaction.atomic():
        _locked_cursor(CURSORS["conversions"])
        _recount_conversion_hours({start + timedelta(hours=n) for n in range(24)})
    zone = day_tables_zone()
    if zone is not None:
        # The day of the same date in REPORT_TIME_ZONE, recounted whole.
        local_start = datetime.combine(day, datetime.min.time(), tzinfo=zone)
        local_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        with transaction.atomic():
            clicks_upto = _locked_cursor(CURSORS["clicks"]).last_id
            starts_upto = _locked_cursor(CURSORS["starts"]).last_id
            _locked_cursor(CURSORS["conversions"])
            TrafficDay.objects.filter(day=day).delete()
            in_local_day = Q(created_at__gte=local_start, created_at__lt=local_end)
            for counts, model, upto in ((_click_counts, Click, clicks_upto), (_start_counts, BotStart, starts_upto)):
                _insert_from(TrafficDay, counts(model.objects.filter(in_local_day, id__lte=upto), day_zone=zone),
                             counters=TRAFFIC_COUNTERS, add=True)  # fmt: skip
            _recount_conversion_days({day}, zone)


def rolled_up_until() -> datetime | None:
    """When the report tables were last brought up to date (the clicks cursor's last move)."""
    cursor = RollupCursor.objects.filter(name=CURSORS["clicks"]).first()
    return cursor.updated_at if cursor else None
