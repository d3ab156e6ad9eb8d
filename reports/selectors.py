"""Reads of the reports: grouped numbers from the rollups, costs, medians, funnel, charts, sub-id lists.

A report reads the hour-grain rollups (reports/rollups.py), never the raw clicks: the narrow tables
when it groups by campaign, link, creative and time only, the detailed ones otherwise. The median
time to conversion is the exception: it is computed from the conversions table for the filtered
range (conversions are about ten times fewer than clicks, and a median cannot be added up from
hourly parts the way an average can).
"""

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, connections
from django.db.models import Aggregate, Count, F, FloatField, Q, Sum, Value
from django.db.models.functions import Coalesce, ExtractHour, NullIf, TruncDate, TruncHour

from conversions.models import Campaign, Conversion, TrafficSource
from reports.models import (
    ConversionDay,
    ConversionDetailHour,
    ConversionHour,
    CostEntry,
    CostPerClick,
    DayZone,
    SourceList,
    TimeToConversionDay,
    TrafficDay,
    TrafficDetailHour,
    TrafficHour,
)

MAX_ROWS = 1000
TRAFFIC_COUNTERS = ("clicks", "unique_clicks", "bot_hits", "landing_views", "starts")
APPROVED, PENDING, REJECTED = Conversion.Status.APPROVED, Conversion.Status.PENDING, Conversion.Status.REJECTED


def report_time_zone() -> ZoneInfo:
    return ZoneInfo(settings.REPORT_TIME_ZONE)


# --- dimensions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    key: str
    label: str
    detail: bool  # needs the detailed rollups (the visitor's dimensions)
    time: bool = False


DIMENSIONS = {
    dimension.key: dimension
    for dimension in (
        Dimension("campaign", "Campaign", False),
        Dimension("link", "Link (utm_id)", False),
        Dimension("creative", "Creative", False),
        Dimension("utm_content", "utm_content", True),
        Dimension("subid", "Sub-id", True),
        Dimension("country", "Country", True),
        Dimension("city", "City", True),
        Dimension("device", "Device", True),
        Dimension("os", "OS", True),
        Dimension("browser", "Browser", True),
        Dimension("day", "Day", False, time=True),
        Dimension("hour", "Hour", False, time=True),
        Dimension("hour_of_day", "Hour of day", False, time=True),
    )
}
DETAIL_COLUMN = {"utm_content": "utm_content", "subid": "subid", "country": "country", "city": "city",
                 "device": "device_type", "os": "os", "browser": "browser"}  # fmt: skip


def _rollup_expression(key: str, tz: ZoneInfo, *, by_day: bool = False):
    """A dimension on a rollup table: its time column is `hour` (UTC), or `day` on the day tables."""
    if by_day and key == "day":
        return F("day")
    if key == "campaign":
        return F("campaign_id")
    if key == "link":
        return F("link_id")
    if key == "creative":
        return Coalesce("link__creative", Value(""))
    if key == "day":
        return TruncDate("hour", tzinfo=tz)
    if key == "hour":
        return TruncHour("hour", tzinfo=tz)
    if key == "hour_of_day":
        return ExtractHour("hour", tzinfo=tz)
    return F(DETAIL_COLUMN[key])


def _conversion_expression(key: str, tz: ZoneInfo):
    """The same dimension on the conversions table (the visitor's dimensions through its click)."""
    if key in ("campaign", "link", "creative"):
        return _rollup_expression(key, tz)
    if key == "day":
        return TruncDate("created_at", tzinfo=tz)
    if key == "hour":
        return TruncHour("created_at", tzinfo=tz)
    if key == "hour_of_day":
        return ExtractHour("created_at", tzinfo=tz)
    if key == "utm_content":
        return Coalesce(NullIf("click__utm_content", Value("")), "link__utm_content", Value(""))
    return Coalesce(f"click__{DETAIL_COLUMN[key]}", Value(""))


# --- the query -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportQuery:
    """What to count: [start, end) in UTC, grouped by up to three dimensions, optionally filtered."""

    start: datetime
    end: datetime
    dimensions: tuple[str, ...] = ()
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    campaign_ids: tuple[int, ...] = ()
    link_ids: tuple[int, ...] = ()
    subids: tuple[str, ...] = ()

    @classmethod
    def for_days(cls, *, date_from: date, date_to: date, tz: ZoneInfo, **kwargs) -> "ReportQuery":
        """Whole days of the marketer's time zone, date_to included."""
        start = datetime.combine(date_from, datetime.min.time(), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(date_to + timedelta(days=1), datetime.min.time(), tzinfo=tz).astimezone(UTC)
        return cls(start=start, end=end, tz=tz, **kwargs)

    @property
    def detail(self) -> bool:
        return bool(self.subids) or any(DIMENSIONS[key].detail for key in self.dimensions)

    def whole_days(self, zone: ZoneInfo) -> tuple[date, date] | None:
        """(first, last day) when the range is whole days of `zone`, else None."""
        first, last = self.start.astimezone(zone), self.end.astimezone(zone)
        if first.time() != datetime.min.time() or last.time() != datetime.min.time():
            return None
        return first.date(), last.date() - timedelta(days=1)

    def scope(self, *, time_field: str, days: tuple[date, date] | None = None) -> Q:
        if days:
            condition = Q(day__gte=days[0], day__lte=days[1])
        else:
            condition = Q(**{f"{time_field}__gte": self.start, f"{time_field}__lt": self.end})
        if self.campaign_ids:
            condition &= Q(campaign_id__in=self.campaign_ids)
        if self.link_ids:
            condition &= Q(link_id__in=self.link_ids)
        return condition


class Median(Aggregate):
    """PostgreSQL's exact median."""

    function = "PERCENTILE_CONT"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


@dataclass
class Row:
    key: tuple
    clicks: int = 0
    unique_clicks: int = 0
    bot_hits: int = 0
    landing_views: int = 0
    starts: int = 0
    conversions: int = 0  # approved
    pending: int = 0
    rejected: int = 0
    goals: dict = field(default_factory=dict)  # approved conversions by goal
    revenue_minor: int = 0  # approved
    cost_minor: float = 0.0
    ttc_sum_s: int = 0
    ttc_count: int = 0
    median_ttc_s: float | None = None

    @property
    def profit_minor(self) -> float:
        return self.revenue_minor - self.cost_minor

    @property
    def roi(self) -> float | None:
        return 100.0 * self.profit_minor / self.cost_minor if self.cost_minor else None

    @property
    def cr(self) -> float | None:
        return 100.0 * self.conversions / self.clicks if self.clicks else None

    @property
    def epc_minor(self) -> float | None:
        return self.revenue_minor / self.clicks if self.clicks else None

    @property
    def avg_ttc_s(self) -> float | None:
        return self.ttc_sum_s / self.ttc_count if self.ttc_count else None

    @property
    def bot_rate(self) -> float | None:
        visits = self.clicks + self.bot_hits
        return 100.0 * self.bot_hits / visits if visits else None

    def metric(self, name: str) -> float | None:
        """A rule's metric: money in major units, rates in %."""
        money = {"revenue": self.revenue_minor, "cost": self.cost_minor, "profit": self.profit_minor,
                 "epc": self.epc_minor}  # fmt: skip
        if name in money:
            return None if money[name] is None else money[name] / 100
        return {"roi": self.roi, "cr": self.cr, "bot_rate": self.bot_rate}.get(name, getattr(self, name, None))

    def add(self, other: "Row") -> None:
        for name in (*TRAFFIC_COUNTERS, "conversions", "pending", "rejected", "revenue_minor", "cost_minor",
                     "ttc_sum_s", "ttc_count"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for goal, count in other.goals.items():
            self.goals[goal] = self.goals.get(goal, 0) + count


@dataclass
class ReportResult:
    query: ReportQuery
    rows: list[Row]  # every group, unsorted
    totals: Row
    goals: list[str]


def report_rows(query: ReportQuery) -> ReportResult:
    """Every group of the query with its numbers; plus the totals of the whole range."""
    rows: dict[tuple, Row] = {}

    def row(key: tuple) -> Row:
        if key not in rows:
            rows[key] = Row(key=key)
        return rows[key]

    days = _day_tables_serve(query)
    names = [f"d_{key}" for key in query.dimensions]
    expressions = {f"d_{key}": _rollup_expression(key, query.tz, by_day=bool(days)) for key in query.dimensions}
    costs = _CostPlan.for_query(query)

    traffic_model = TrafficDay if days else TrafficDetailHour if query.detail else TrafficHour
    traffic = traffic_model.objects.filter(query.scope(time_field="hour", days=days))
    if query.subids:
        traffic = traffic.filter(subid__in=query.subids)
    cost_keys = costs.group_keys() if costs and not days else {}
    rows_to_price = traffic
    traffic = traffic.values(**expressions, **cost_keys).annotate(**{name: Sum(name) for name in TRAFFIC_COUNTERS})
    if days:
        # The day tables are keyed by what costs are priced by (campaign, link, day): each day's cost
        # goes straight to its group.
        traffic_rows = list(traffic.order_by())
        if costs:
            day_clicks = costs.day_clicks_query()
            costs.price(day_clicks)
            for key, cost in _day_costs_by_group(query, costs, day_clicks):
                row(key).cost_minor += cost
    elif costs and connection.vendor == "postgresql":
        # Rows by group and (campaign, link, day) to cost are many thousands on the hourly tables:
        # PostgreSQL prices them and adds them up itself; only the groups come back.
        costs.price(costs.day_clicks_query())
        rows_to_price = rows_to_price.values(*TRAFFIC_COUNTERS, **expressions, **cost_keys).order_by()
        traffic_rows = _priced_in_sql(rows_to_price, names, costs, query.tz)
    else:
        traffic_rows = list(traffic.order_by())
        if costs:
            # One scan when the report's own rows hold every click of the cost days; else a second one.
            whole = costs.whole_days_unfiltered
            costs.price(costs.day_clicks_from(traffic_rows) if whole else costs.day_clicks_query())
            for values in traffic_rows:
                values["cost"] = costs.cost_of(values)
    for values in traffic_rows:
        target = row(tuple(values[name] for name in names))
        for name in TRAFFIC_COUNTERS:
            setattr(target, name, getattr(target, name) + (values[name] or 0))
        target.cost_minor += values.get("cost") or 0.0

    conversion_model = ConversionDay if days else ConversionDetailHour if query.detail else ConversionHour
    converted = conversion_model.objects.filter(query.scope(time_field="hour", days=days))
    if query.subids:
        converted = converted.filter(subid__in=query.subids)
    # One row per group: statuses and goals become filtered sums (the goals of the range first).
    goals = sorted(set(converted.values_list("goal", flat=True).distinct().order_by()))
    approved = Q(status=APPROVED)
    sums = {
        "n_approved": Sum("conversions", filter=approved),
        "n_pending": Sum("conversions", filter=Q(status=PENDING)),
        "n_rejected": Sum("conversions", filter=Q(status=REJECTED)),
        "revenue": Sum("revenue_minor", filter=approved),
        "ttc_sum": Sum("ttc_sum_s", filter=approved),
        "ttc_count": Sum("ttc_count", filter=approved),
        **{f"goal_{index}": Sum("conversions", filter=approved & Q(goal=goal)) for index, goal in enumerate(goals)},
    }
    width = len(names)
    for values in converted.values(**expressions).annotate(**sums).values_list(*names, *sums).order_by():
        target = row(values[:width])
        approved_n, pending_n, rejected_n, revenue, ttc_sum, ttc_count, *by_goal = (v or 0 for v in values[width:])
        target.conversions += approved_n
        target.pending += pending_n
        target.rejected += rejected_n
        target.revenue_minor += revenue
        target.ttc_sum_s += ttc_sum
        target.ttc_count += ttc_count
        for goal, count in zip(goals, by_goal, strict=True):
            if count:
                target.goals[goal] = target.goals.get(goal, 0) + count
    goals = {goal for each in rows.values() for goal in each.goals}

    if costs:
        for key, amount in costs.unallocated(query.dimensions):
            row(key).cost_minor += amount

    totals = Row(key=())
    for each in rows.values():
        totals.add(each)
    if totals.ttc_count:
        if days:
            samples = _ttc_samples_by_day(query, days, expressions, names)
            medians = {key: float(statistics.median(values)) for key, values in samples.items()}
            everything = [value for values in samples.values() for value in values]
            overall = float(statistics.median(everything)) if everything else None
        else:
            medians, overall = _medians(query), _medians(query, overall=True).get(())
        for key, median in medians.items():
            if key in rows:
                rows[key].median_ttc_s = median
        totals.median_ttc_s = overall
    return ReportResult(query=query, rows=list(rows.values()), totals=totals, goals=sorted(goals))


def _day_costs_by_group(query: ReportQuery, costs: "_CostPlan", day_clicks: dict):
    """(group key, cost) of each campaign, link and day in the query, for the day tables' dimensions."""
    creatives = {}
    if "creative" in query.dimensions:
        link_ids = {link_id for _, link_id, _ in day_clicks if link_id}
        creatives = dict(TrafficSource.objects.filter(pk__in=link_ids).values_list("pk", "creative"))
    positions = [("campaign", "link", "day", "creative").index(name) for name in query.dimensions]
    for (campaign_id, link_id, day), clicks in day_clicks.items():
        if (query.campaign_ids and campaign_id not in query.campaign_ids) or (
            query.link_ids and link_id not in query.link_ids
        ):
            continue
        cost = clicks * costs.rate.get((campaign_id, link_id, day), 0.0)
        if cost:
            values = (campaign_id, link_id, day, creatives.get(link_id, ""))
            yield tuple(values[position] for position in positions), cost


def _priced_in_sql(traffic, names: list[str], costs: "_CostPlan", tz: ZoneInfo) -> list[dict]:
    """The traffic grouped and priced by PostgreSQL: the cost of a click of every (campaign, link, day)
    goes in as arrays, is hash-joined to the rollup rows and summed with them, by group only."""
    sql, params = traffic.query.sql_with_params()
    quote = connection.ops.quote_name
    groups = ", ".join(f"s.{quote(name)}" for name in names)
    sums = ", ".join(f"SUM(s.{quote(name)})::bigint AS {quote(name)}" for name in TRAFFIC_COUNTERS)
    statement = (
        f"SELECT {groups + ', ' if groups else ''}{sums}, SUM(s.clicks * COALESCE(r.rate, 0)) AS cost "
        f"FROM ({sql}) s LEFT JOIN unnest(%s::bigint[], %s::bigint[], %s::date[], %s::float8[]) "
        "AS r(campaign_id, link_id, day, rate) "
        "ON r.campaign_id = s.k_campaign AND r.link_id = COALESCE(s.k_link, 0) AND r.day = s.k_day"
        + (f" GROUP BY {groups}" if groups else "")
    )
    keys = list(costs.rate)
    rates = ([key[0] for key in keys], [key[1] or 0 for key in keys], [key[2] for key in keys],
             [costs.rate[key] for key in keys])  # fmt: skip
    with connections[traffic.db].cursor() as cursor:  # the reports replica inside report_reads()
        cursor.execute(statement, (*params, *rates))
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
    for values in rows:
        if isinstance(values.get("d_hour"), datetime):  # timestamp without time zone: the zone's wall time
            values["d_hour"] = values["d_hour"].replace(tzinfo=tz)
        if values.get("d_hour_of_day") is not None:
            values["d_hour_of_day"] = int(values["d_hour_of_day"])
    return [values for values in rows if any(values[name] for name in TRAFFIC_COUNTERS) or values["cost"]]


def _day_tables_serve(query: ReportQuery) -> tuple[date, date] | None:
    """The days to read from the day tables, when they can answer this query: whole days of
    REPORT_TIME_ZONE (which they hold), no hour and no visitor dimension."""
    if query.detail or any(key in ("hour", "hour_of_day") for key in query.dimensions):
        return None
    if query.tz.key != settings.REPORT_TIME_ZONE:
        return None
    if DayZone.objects.values_list("tz", flat=True).first() != settings.REPORT_TIME_ZONE:
        return None  # REPORT_TIME_ZONE changed and the day tables were not rebuilt yet
    return query.whole_days(query.tz)


def _ttc_samples_by_day(query: ReportQuery, days, expressions: dict, names: list[str]) -> dict[tuple, list[int]]:
    """The approved conversions' times to conversion of each group, from the day tables' raw values."""
    samples, removed = defaultdict(list), defaultdict(Counter)
    times = TimeToConversionDay.objects.filter(query.scope(time_field="", days=days))
    for *group, values_s, removed_s in times.annotate(**expressions).values_list(*names, "values_s", "removed_s"):
        if values_s:
            samples[tuple(group)].extend(map(int, values_s.split(",")))
        if removed_s:
            removed[tuple(group)].update(map(int, removed_s.split(",")))
    for group, taken_out in removed.items():  # values that stopped being approved, once each
        kept = []
        for value in samples[group]:
            if taken_out[value]:
                taken_out[value] -= 1
            else:
                kept.append(value)
        samples[group] = kept
    return {group: values for group, values in samples.items() if values}


def _approved_conversions(query: ReportQuery):
    conversions = Conversion.objects.filter(query.scope(time_field="created_at"), status=APPROVED,
                                            time_to_conversion_s__isnull=False)  # fmt: skip
    if query.subids:
        conversions = conversions.filter(click__subid__in=query.subids)
    return conversions


def _medians(query: ReportQuery, *, overall: bool = False) -> dict[tuple, float]:
    """The median time to conversion (approved) of each group, from the conversions table."""
    dimensions = () if overall else query.dimensions
    names = [f"d_{key}" for key in dimensions]
    expressions = {f"d_{key}": _conversion_expression(key, query.tz) for key in dimensions}
    if not expressions and connection.vendor == "postgresql":
        median = _approved_conversions(query).aggregate(median=Median("time_to_conversion_s"))["median"]
        return {} if median is None else {(): median}
    conversions = _approved_conversions(query).values(**expressions)
    if connection.vendor == "postgresql":
        grouped = conversions.annotate(median=Median("time_to_conversion_s")).order_by()
        return {tuple(values[name] for name in names): values["median"] for values in grouped}
    samples = defaultdict(list)  # SQLite (the embedded default): no PERCENTILE_CONT
    for values in conversions.values(*expressions, ttc=F("time_to_conversion_s")).order_by():
        samples[tuple(values[name] for name in names)].append(values["ttc"])
    return {key: float(statistics.median(values)) for key, values in samples.items()}


# --- costs ---------------------------------------------------------------------------------------


class _CostPlan:
    """What one click costs on each (campaign, link, day of REPORT_TIME_ZONE) of a query.

    The most specific cost wins: the link's daily spend (spread over its clicks that day), else the
    link's cost per click, else the campaign's daily spend (spread over the day's clicks of its
    links that have no cost of their own, and its classic clicks), else the campaign's cost per click.
    Spend on a day without a click to carry it is kept whole and shown on its own row.
    """

    def __init__(self, query: ReportQuery, campaign_ids: set[int]):
        self.query = query
        self.campaign_ids = campaign_ids
        self.tz = report_time_zone()
        self.first_day = query.start.astimezone(self.tz).date()
        self.last_day = (query.end - timedelta(microseconds=1)).astimezone(self.tz).date()
        self.day_start = datetime.combine(self.first_day, datetime.min.time(), tzinfo=self.tz)
        self.day_end = datetime.combine(self.last_day + timedelta(days=1), datetime.min.time(), tzinfo=self.tz)
        self.rate, self.orphans = {}, []

    @property
    def whole_days_unfiltered(self) -> bool:
        """The report itself sees every click of the cost days: its own rows can count them."""
        query = self.query
        return (query.start, query.end) == (self.day_start, self.day_end) and not query.link_ids and not query.subids

    def day_clicks_from(self, rows) -> dict:
        clicks = defaultdict(int)
        for values in rows:
            if values["k_campaign"] in self.campaign_ids:
                clicks[(values["k_campaign"], values["k_link"], values["k_day"])] += values["clicks"]
        return clicks

    def day_clicks_query(self) -> dict:
        clicks = defaultdict(int)  # (campaign, link, day) -> clicks of the whole day, unfiltered by link
        if DayZone.objects.values_list("tz", flat=True).first() == self.tz.key:
            by_day = TrafficDay.objects.filter(campaign_id__in=self.campaign_ids, day__gte=self.first_day,
                                               day__lte=self.last_day)  # fmt: skip
            for campaign_id, link_id, day, count in by_day.values_list("campaign_id", "link_id", "day", "clicks"):
                clicks[(campaign_id, link_id, day)] += count
            return clicks
        for values in (
            TrafficHour.objects.filter(campaign_id__in=self.campaign_ids, hour__gte=self.day_start,
                                       hour__lt=self.day_end)
            .values("campaign_id", "link_id", day=TruncDate("hour", tzinfo=self.tz))
            .annotate(clicks=Sum("clicks"))
            .order_by()
        ):  # fmt: skip
            clicks[(values["campaign_id"], values["link_id"], values["day"])] += values["clicks"]
        return clicks

    def price(self, clicks: dict) -> None:
        """Work out the cost of one click on each (campaign, link, day), given the days' clicks."""
        campaign_ids = self.campaign_ids
        spend = {
            (entry.campaign_id, entry.link_id, entry.day): entry.amount_minor
            for entry in CostEntry.objects.filter(
                campaign_id__in=campaign_ids, day__gte=self.first_day, day__lte=self.last_day
            )  # fmt: skip
        }
        per_click = defaultdict(list)  # (campaign, link) -> [(starts_on, cpc minor)], newest first
        for cpc in CostPerClick.objects.filter(campaign_id__in=campaign_ids, starts_on__lte=self.last_day):
            per_click[(cpc.campaign_id, cpc.link_id)].append((cpc.starts_on, float(cpc.cost_per_click) * 100))
        for rates in per_click.values():
            rates.sort(reverse=True)

        found = {}

        def cpc(campaign_id, link_id, day):
            if (campaign_id, link_id) not in per_click:  # the common case: no price at this level
                return None
            key = (campaign_id, link_id, day)
            if key not in found:
                found[key] = next((rate for starts_on, rate in per_click[(campaign_id, link_id)] if starts_on <= day),
                                  None)  # fmt: skip
            return found[key]

        self.rate = {}  # (campaign, link, day) -> cost of one click, minor units
        campaign_pool = defaultdict(int)  # (campaign, day) -> clicks left to the campaign's own cost
        for (campaign_id, link_id, day), count in clicks.items():
            own_spend = spend.get((campaign_id, link_id, day)) if link_id else None
            own_cpc = cpc(campaign_id, link_id, day) if link_id else None
            if own_spend is not None:
                self.rate[(campaign_id, link_id, day)] = own_spend / count if count else 0.0
            elif own_cpc is not None:
                self.rate[(campaign_id, link_id, day)] = own_cpc
            else:
                campaign_pool[(campaign_id, day)] += count
        for campaign_id, link_id, day in clicks:
            if (campaign_id, link_id, day) in self.rate:
                continue
            campaign_spend = spend.get((campaign_id, None, day))
            pool = campaign_pool[(campaign_id, day)]
            if campaign_spend is not None:
                self.rate[(campaign_id, link_id, day)] = campaign_spend / pool if pool else 0.0
            else:
                self.rate[(campaign_id, link_id, day)] = cpc(campaign_id, None, day) or 0.0
        self.orphans = []  # spend that no click of its day carries: (campaign, link, day, amount)
        for (campaign_id, link_id, day), amount in spend.items():
            carried = clicks.get((campaign_id, link_id, day)) if link_id else campaign_pool.get((campaign_id, day))
            if amount and not carried:
                self.orphans.append((campaign_id, link_id, day, amount))

    @classmethod
    def for_query(cls, query: ReportQuery) -> "_CostPlan | None":
        """A plan for the campaigns of the query that have any cost at all; None when none has."""
        entries = CostEntry.objects.filter(day__lte=query.end.date() + timedelta(days=1))
        rates = CostPerClick.objects.all()
        if query.campaign_ids:
            entries = entries.filter(campaign_id__in=query.campaign_ids)
            rates = rates.filter(campaign_id__in=query.campaign_ids)
        campaign_ids = set(
            entries.values_list("campaign_id", flat=True).distinct().order_by()
            .union(rates.values_list("campaign_id", flat=True).distinct().order_by())
        )  # fmt: skip
        return cls(query, campaign_ids) if campaign_ids else None

    def group_keys(self) -> dict:
        return {"k_campaign": F("campaign_id"), "k_link": F("link_id"), "k_day": TruncDate("hour", tzinfo=self.tz)}

    def cost_of(self, values: dict) -> float:
        return values["clicks"] * self.rate.get((values["k_campaign"], values["k_link"], values["k_day"]), 0.0)

    def unallocated(self, dimensions: tuple[str, ...]):
        """Orphan spend as (group key, amount): it lands on its campaign, link and day where the report
        groups by them, and on an empty value of every other dimension."""
        query = self.query
        links = TrafficSource.objects.in_bulk([link_id for _, link_id, _, _ in self.orphans if link_id])
        for campaign_id, link_id, day, amount in self.orphans:
            if query.link_ids and link_id not in query.link_ids:
                continue
            if query.subids:
                continue  # spend is not bought per sub-id
            key = []
            for name in dimensions:
                if name == "campaign":
                    key.append(campaign_id)
                elif name == "link":
                    key.append(link_id)
                elif name == "creative":
                    key.append(links[link_id].creative if link_id in links else "")
                elif name == "day":
                    key.append(day)
                elif name in ("hour", "hour_of_day"):
                    key.append(None)
                else:
                    key.append("")
            yield tuple(key), float(amount)


# --- labels, sorting, the table ------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str  # dimension | int | money | percent | minutes


def report_columns(result: ReportResult) -> list[Column]:
    columns = [Column(f"d_{key}", DIMENSIONS[key].label, "dimension") for key in result.query.dimensions]
    columns += [
        Column("clicks", "Clicks", "int"),
        Column("unique_clicks", "Unique clicks", "int"),
        Column("bot_hits", "Bot hits", "int"),
        Column("landing_views", "Landing views", "int"),
        Column("starts", "Bot starts", "int"),
        Column("conversions", "Conversions", "int"),
        Column("pending", "Pending", "int"),
        Column("rejected", "Rejected", "int"),
        *(Column(f"goal:{goal}", f"Conv. {goal}", "int") for goal in result.goals),
        Column("cr", "CR %", "percent"),
        Column("revenue_minor", "Revenue", "money"),
        Column("cost_minor", "Cost", "money"),
        Column("profit_minor", "Profit", "money"),
        Column("roi", "ROI %", "percent"),
        Column("epc_minor", "EPC", "money"),
        Column("avg_ttc_s", "Avg time to conv. (min)", "minutes"),
        Column("median_ttc_s", "Median time to conv. (min)", "minutes"),
    ]
    return columns


def format_value(value, kind: str) -> str:
    if value is None:
        return ""
    if kind == "int":
        return str(int(value))
    if kind == "money":
        return f"{value / 100:.2f}"
    if kind == "percent":
        return f"{value:.2f}"
    if kind == "minutes":
        return f"{value / 60:.1f}"
    return str(value)


def dimension_labels(result: ReportResult) -> dict[tuple, list[str]]:
    """Human labels of every row's key: campaign names, utm_ids, dates, sub-ids with their list mark."""
    dimensions = result.query.dimensions
    campaign_ids, link_ids, subids = set(), set(), set()
    for row in result.rows:
        for name, value in zip(dimensions, row.key, strict=True):
            if name == "campaign":
                campaign_ids.add(value)
            elif name == "link" and value:
                link_ids.add(value)
            elif name == "subid" and value:
                subids.add(value)
    campaigns = dict(Campaign.objects.filter(pk__in=campaign_ids).values_list("pk", "name"))
    links = dict(TrafficSource.objects.filter(pk__in=link_ids).values_list("pk", "utm_id"))
    listed = subid_marks(subids=subids, campaign_ids=result.query.campaign_ids)
    labels = {}
    for row in result.rows:
        texts = []
        for name, value in zip(dimensions, row.key, strict=True):
            if name == "campaign":
                texts.append(campaigns.get(value, f"#{value}"))
            elif name == "link":
                texts.append(links.get(value, f"#{value}") if value else "(no link)")
            elif name == "day":
                texts.append(value.isoformat() if value else "")
            elif name == "hour":
                texts.append(value.astimezone(result.query.tz).strftime("%Y-%m-%d %H:00") if value else "")
            elif name == "hour_of_day":
                texts.append(f"{int(value):02d}:00" if value is not None else "")
            elif name == "subid" and value in listed:
                texts.append(f"{value} [{listed[value]}]")
            else:
                texts.append(value if value else "(none)")
        labels[row.key] = texts
    return labels


def subid_marks(*, subids, campaign_ids=()) -> dict[str, str]:
    """Which of these sub-ids are black- or whitelisted (in the given campaigns, or in any)."""
    entries = SourceList.objects.filter(subid__in=subids)
    if campaign_ids:
        entries = entries.filter(campaign_id__in=campaign_ids)
    marks = {}
    for subid, kind in entries.values_list("subid", "kind"):
        # Blacklisted anywhere in scope wins over whitelisted elsewhere: it is the warning.
        if marks.get(subid) != SourceList.Kind.BLACKLIST:
            marks[subid] = kind
    return {subid: "blacklisted" if kind == SourceList.Kind.BLACKLIST else "whitelisted"
            for subid, kind in marks.items()}  # fmt: skip


def subid_is_blacklisted(*, campaign_id: int, subid: str) -> bool:
    """For the click path, should it ever refuse blacklisted sources: one indexed lookup."""
    return SourceList.objects.filter(campaign_id=campaign_id, subid=subid, kind=SourceList.Kind.BLACKLIST).exists()


@dataclass
class ReportTable:
    columns: list[Column]
    rows: list[list[str]]  # formatted cells, in column order, as shown
    totals: list[str]
    total_rows: int
    sort: str


def _sort_value(row: Row, key: str, labels: dict, dimensions: tuple[str, ...]):
    if key.startswith("d_"):
        index = dimensions.index(key[2:])
        raw = row.key[index]
        if DIMENSIONS[key[2:]].time:
            return (raw is None, raw)
        return (False, labels[row.key][index].lower())
    value = row.goals.get(key[5:], 0) if key.startswith("goal:") else getattr(row, key)
    return (value is None, value if value is not None else 0)


def default_sort(dimensions: tuple[str, ...]) -> str:
    if dimensions and DIMENSIONS[dimensions[0]].time:
        return f"d_{dimensions[0]}"
    return "-clicks"


def report_table(result: ReportResult, *, sort: str = "", limit: int = MAX_ROWS) -> ReportTable:
    """The report as shown (and exported): formatted cells, sorted, at most `limit` rows, and totals."""
    columns = report_columns(result)
    keys = {column.key for column in columns}
    sort = sort if sort.lstrip("-") in keys else default_sort(result.query.dimensions)
    descending, key = sort.startswith("-"), sort.lstrip("-")
    labels = dimension_labels(result)
    dimensions = result.query.dimensions
    present = result.rows
    # None sorts last either way: sort by presence first, then by value.
    ordered = sorted(present, key=lambda row: _sort_value(row, key, labels, dimensions)[1], reverse=descending)
    ordered.sort(key=lambda row: _sort_value(row, key, labels, dimensions)[0])
    shown = ordered[:limit]

    def cells(row: Row, texts: list[str]) -> list[str]:
        out = list(texts)
        for column in columns[len(dimensions) :]:
            value = row.goals.get(column.key[5:], 0) if column.key.startswith("goal:") else getattr(row, column.key)
            out.append(format_value(value, column.kind))
        return out

    return ReportTable(
        columns=columns,
        rows=[cells(row, labels[row.key]) for row in shown],
        totals=cells(result.totals, ["Total"] + [""] * (len(dimensions) - 1) if dimensions else []),
        total_rows=len(present),
        sort=sort,
    )


# --- charts --------------------------------------------------------------------------------------

TTC_BUCKETS = (
    ("< 1 min", 0, 60),
    ("1–5 min", 60, 300),
    ("5–15 min", 300, 900),
    ("15–60 min", 900, 3600),
    ("1–6 h", 3600, 6 * 3600),
    ("6–24 h", 6 * 3600, 86400),
    ("1–3 days", 86400, 3 * 86400),
    ("3–7 days", 3 * 86400, 7 * 86400),
    ("≥ 7 days", 7 * 86400, None),
)


def ttc_distribution(query: ReportQuery) -> list[tuple[str, int]]:
    """How many approved conversions came how long after their click."""
    buckets = {}
    for _label, low, high in TTC_BUCKETS:
        condition = Q(time_to_conversion_s__gte=low)
        if high is not None:
            condition &= Q(time_to_conversion_s__lt=high)
        buckets[f"b{len(buckets)}"] = Count("id", filter=condition)
    days = _day_tables_serve(query)
    if days:
        counts = [0] * len(TTC_BUCKETS)
        for values in _ttc_samples_by_day(query, days, {}, []).values():
            for value in values:
                counts[next(n for n, (_, low, high) in enumerate(TTC_BUCKETS) if high is None or value < high)] += 1
        return [(label, count) for (label, _, _), count in zip(TTC_BUCKETS, counts, strict=True)]
    counted = _approved_conversions(query).aggregate(**buckets)
    return [(label, counted[f"b{index}"]) for index, (label, _, _) in enumerate(TTC_BUCKETS)]


def funnel_steps(totals: Row) -> list[dict]:
    """Clicks → landing views → bot starts → purchases, each with the drop-off from the step before."""
    steps = [("Clicks", totals.clicks), ("Landing views", totals.landing_views), ("Bot starts", totals.starts),
             ("Purchases (approved)", totals.conversions)]  # fmt: skip
    out, previous = [], None
    for label, count in steps:
        drop = None if not previous else round(100.0 * (previous - count) / previous, 1)
        out.append({"label": label, "count": count, "drop_off_pct": drop,
                    "of_clicks_pct": round(100.0 * count / totals.clicks, 1) if totals.clicks else None})  # fmt: skip
        previous = count
    return out


def time_series(query: ReportQuery) -> dict:
    """Clicks, conversions and revenue per day (per hour for ranges up to two days), gaps filled."""
    hourly = query.end - query.start <= timedelta(days=2)
    key = "hour" if hourly else "day"
    result = report_rows(ReportQuery(start=query.start, end=query.end, dimensions=(key,), tz=query.tz,
                                     campaign_ids=query.campaign_ids, link_ids=query.link_ids))  # fmt: skip
    by_key = {row.key[0]: row for row in result.rows if row.key[0] is not None}
    labels, clicks, conversions, revenue, cost = [], [], [], [], []
    moment = query.start.astimezone(query.tz)
    while moment < query.end:
        point = moment.replace(minute=0, second=0, microsecond=0) if hourly else moment.date()
        row = by_key.get(point) or Row(key=(point,))
        labels.append(point.strftime("%m-%d %H:00") if hourly else point.isoformat())
        clicks.append(row.clicks)
        conversions.append(row.conversions)
        revenue.append(round(row.revenue_minor / 100, 2))
        cost.append(round(row.cost_minor / 100, 2))
        moment = (moment + timedelta(hours=1)) if hourly else _next_day(moment, query.tz)
    return {"labels": labels, "clicks": clicks, "conversions": conversions, "revenue": revenue, "cost": cost}


def _next_day(moment: datetime, tz: ZoneInfo) -> datetime:
    return datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)


def top_creatives(query: ReportQuery, *, limit: int = 10) -> list[dict]:
    """The creatives (videos, ads) that bring the most revenue, then clicks."""
    result = report_rows(ReportQuery(start=query.start, end=query.end, dimensions=("creative",), tz=query.tz,
                                     campaign_ids=query.campaign_ids, link_ids=query.link_ids))  # fmt: skip
    ranked = sorted(result.rows, key=lambda row: (row.revenue_minor, row.clicks), reverse=True)[:limit]
    return [{"creative": row.key[0] or "(none)", "clicks": row.clicks, "conversions": row.conversions,
             "revenue": round(row.revenue_minor / 100, 2), "profit": round(row.profit_minor / 100, 2)}
            for row in ranked]  # fmt: skip
