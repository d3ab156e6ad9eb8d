"""Background rollup of the append-only click and start tables into DailyStats.

A cursor per table remembers the last primary key counted. Each refresh counts the rows after it
and adds them to the days' rows in one INSERT … ON CONFLICT DO UPDATE; the refresh holds the cursor
row locked, so refreshes never overlap. Rows younger than SETTLE_S are left for the next run: a click
whose id was allocated before a neighbour's may commit a moment after it, and must not be skipped.
"""

from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from conversions.models import BotStart, Click, DailyStats, RollupCursor

SETTLE_S = 2
MAX_ROWS_PER_REFRESH = 200_000


def step_end(rows, size: int) -> int | None:
    """The id that ends a step of at most `size` of `rows` (after a cursor): the size-th id, or the last.

    Counted in rows, not in ids: ids have gaps (rolled-back inserts), and a step bounded by
    `cursor + size` would stop advancing for good at a gap wider than the step."""
    # One index range scan of at most `size` rows ("id IN (subquery)" made PostgreSQL scan the table).
    sql, params = rows.order_by("id").values("id")[:size].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(step.id) FROM ({sql}) step", params)
        return cursor.fetchone()[0]


def click_counts(queryset):
    """Clicks grouped by (campaign, link, UTC day) with the rollup's counters."""
    return (
        queryset.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("campaign_id", "link_id", "day")
        .annotate(
            clicks=Count("id", filter=Q(is_bot=False)),
            unique_clicks=Count("id", filter=Q(is_bot=False, is_unique=True)),
            bot_hits=Count("id", filter=Q(is_bot=True)),
            landing_views=Count("id", filter=Q(served_landing=True)),
        )
        .order_by()
    )


def start_counts(queryset):
    return (
        queryset.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("campaign_id", "link_id", "day")
        .annotate(starts=Count("id"))
        .order_by()
    )


SOURCES = {
    "clicks": (Click, click_counts, ("clicks", "unique_clicks", "bot_hits", "landing_views")),
    "starts": (BotStart, start_counts, ("starts",)),
}


def insert_select(
    model,
    queryset,
    *,
    columns: list[str],
    selected: list[str],
    conflict: list[str] | None = None,
    added: tuple[str, ...] = (),
) -> None:
    """INSERT INTO model (columns) SELECT selected FROM (queryset) s: one statement however many rows. With
    `conflict` (the expressions of the model's unique key), a row that exists gets its `added` counters
    increased instead."""
    sql, params = queryset.query.sql_with_params()
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    quoted = ", ".join(quote(column) for column in columns)
    statement = f"INSERT INTO {table} ({quoted}) SELECT {', '.join(selected)} FROM ({sql}) s"
    if conflict:
        # "WHERE true": SQLite needs it to tell ON CONFLICT from a join's ON.
        updates = ", ".join(f"{name} = {table}.{name} + EXCLUDED.{name}" for name in added)
        statement += f" WHERE true ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


DAILY_COUNTERS = tuple(name for _, _, counters in SOURCES.values() for name in counters)


def _add_to_stats(counted, counters: tuple[str, ...]) -> None:
    """Add the rows of `counted` (click_counts or start_counts) to DailyStats in one statement. A row per
    group and an UPDATE each cost 2.2 s for 7,000 clicks spread over 1,000 links (bench/README.md)."""
    counts = [f"s.{name}" if name in counters else "0" for name in DAILY_COUNTERS]
    insert_select(
        DailyStats, counted, columns=["campaign_id", "link_id", "day", *DAILY_COUNTERS],
        selected=["s.campaign_id", "s.link_id", "s.day", *counts],
        conflict=["campaign_id", "COALESCE(link_id, 0)", "day"], added=counters,
    )  # fmt: skip


def _locked_cursor(name: str) -> RollupCursor:
    RollupCursor.objects.get_or_create(name=name)
    return RollupCursor.objects.select_for_update().get(name=name)


def rollup_refresh() -> dict[str, int]:
    """Count new clicks and starts into DailyStats. Returns how many rows each table added."""
    counted = {}
    settled_before = timezone.now() - timedelta(seconds=SETTLE_S)
    for name, (model, counts, counters) in SOURCES.items():
        with transaction.atomic():
            cursor = _locked_cursor(name)
            upper = step_end(model.objects.filter(id__gt=cursor.last_id, created_at__lt=settled_before),
                             MAX_ROWS_PER_REFRESH)  # fmt: skip
            if upper is None:
                counted[name] = 0
                continue
            new_rows = model.objects.filter(id__gt=cursor.last_id, id__lte=upper)
            _add_to_stats(counts(new_rows), counters)
            counted[name] = new_rows.count()
            cursor.last_id = upper
            cursor.save(update_fields=["last_id", "updated_at"])
    return counted


def rollup_reconcile(*, day: date) -> None:
    """Recount one UTC day from the raw rows up to the cursors, replacing what the refreshes added."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    for name, (model, counts, counters) in SOURCES.items():
        with transaction.atomic():
            cursor = _locked_cursor(name)
            DailyStats.objects.filter(day=day).update(**{counter: 0 for counter in counters})
            rows = model.objects.filter(id__lte=cursor.last_id, created_at__gte=start, created_at__lt=end)
            _add_to_stats(counts(rows), counters)


def unrolled_since(name: str) -> int:
    """The cursor of a table: rows above it are not in DailyStats yet."""
    cursor = RollupCursor.objects.filter(name=name).first()
    return cursor.last_id if cursor else 0
