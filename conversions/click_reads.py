"""The click a conversion names, with its link, campaign and pixel (and, for a conversion, the click's
latest lead).

Intake looks a click up on every conversion. Through the ORM, compiling the same select_related query
(four tables, ~80 columns) cost about 1 ms of CPU per conversion, a quarter of the request
(bench/README.md). Here the SELECT is written once from the models and prepared; the rows become the same model
instances the ORM would build (Model.from_db, with the fields' own from_db_value), with the link,
campaign and pixel attached as select_related would attach them. With the click settings cached
(conversions/click_settings.py, as the click path keeps its links) only the click and its lead are read; the
link, campaign and pixel come from that cache, which saved ~45 µs of a webhook's ~800 µs of CPU in-process
(bench/README.md, stop 22). Without it (LINK_CACHE_TTL_S=0) they are joined to the click.
"""

from django.conf import settings
from django.db import connection

from conversions.click_settings import cached_setting, settings_cache
from conversions.models import Campaign, Click, Lead, TrafficSource
from tiktok_ads.models import Pixel
from tracker.db.statements import (
    Joined,
    fetch_one,
    instances_from_row,
    joined_clauses,
    joined_columns,
    joined_select,
    model_from_row,
)

_quote = connection.ops.quote_name
# The click's link is optional and so is the campaign's pixel.
_TABLES = (
    Joined(Click, "c"),
    Joined(TrafficSource, "l", 'LEFT JOIN {table} l ON l."id" = c."link_id"'),
    Joined(Campaign, "cp", 'JOIN {table} cp ON cp."id" = c."campaign_id"'),
    Joined(Pixel, "p", 'LEFT JOIN {table} p ON p."id" = cp."pixel_id"'),
)
# The click is found first, alone (LIMIT keeps PostgreSQL from folding the subquery into the join): on a
# table without statistics yet, the joined form walked a whole index of the clicks (30+ ms a conversion
# in bench/clicks.py) instead of using click_id's unique index. LIMIT 1 also tells the planner it is one
# row when the clicks table is partitioned (conversions/partitions.py), where click_id is unique in each
# partition only: without it, it expected one row a partition and joined the links by a hash of all of them.
_CLICK_FROM = f'FROM (SELECT * FROM {_quote(Click._meta.db_table)} WHERE "click_id" = %s LIMIT 1) c'
CLICK_SQL = f"SELECT {joined_columns(_TABLES)} {_CLICK_FROM} {joined_clauses(_TABLES)}"
# The click alone: its link, campaign and pixel come from the click settings' cache.
CLICK_ALONE_SQL = f"SELECT {joined_columns(_TABLES[:1])} {_CLICK_FROM}"

_LEAD_FIELDS = tuple(Lead._meta.concrete_fields)
_LEAD_COLUMNS = ", ".join(_quote(field.column) for field in _LEAD_FIELDS)
_LATEST_LEAD = (
    f'SELECT {_LEAD_COLUMNS} FROM {_quote(Lead._meta.db_table)} WHERE "click_id" = {{click}} '
    'ORDER BY "attributed_at" DESC, "id" DESC LIMIT 1'
)
LATEST_LEAD_SQL = _LATEST_LEAD.format(click="%s")


def _with_latest_lead(sql: str) -> str:
    # A conversion needs the click's latest lead too: joined here, it costs no second round trip.
    lead_columns = ", ".join(f"ld.{_quote(field.column)}" for field in _LEAD_FIELDS)
    return (
        sql.replace(f" {_CLICK_FROM}", f", {lead_columns} {_CLICK_FROM}", 1)
        + f" LEFT JOIN LATERAL ({_LATEST_LEAD.format(click='c.id')}) ld ON true"
    )


CLICK_WITH_LEAD_SQL = _with_latest_lead(CLICK_SQL)
CLICK_ALONE_WITH_LEAD_SQL = _with_latest_lead(CLICK_ALONE_SQL)
# A link with its campaign and the campaign's pixel (landing/selectors.py adds the landing page).
LINK_TABLES = (
    Joined(TrafficSource, "l"),
    Joined(Campaign, "cp", 'JOIN {table} cp ON cp."id" = l."campaign_id"'),
    Joined(Pixel, "p", 'LEFT JOIN {table} p ON p."id" = cp."pixel_id"'),
)
LINK_SQL = joined_select(LINK_TABLES, 'l."id" = %s')
CAMPAIGN_SQL = joined_select(LINK_TABLES[1:], 'cp."id" = %s')
_links_by_id: dict = settings_cache()
_campaigns_by_id: dict = settings_cache()


def click_with_campaign(click_id: str, *, with_latest_lead: bool = False) -> Click | None:
    """The click with this click_id, its link (if any), campaign and the campaign's pixel (if any); or None.
    `with_latest_lead` also reads the click's latest lead in the same query, for `latest_lead` to return."""
    if connection.vendor != "postgresql":
        return (
            Click.objects.select_related("link__campaign__pixel", "campaign__pixel")
            .filter(click_id=click_id)
            .order_by()
            .first()
        )
    if settings.LINK_CACHE_TTL_S > 0:
        row = fetch_one(CLICK_ALONE_WITH_LEAD_SQL if with_latest_lead else CLICK_ALONE_SQL, [click_id])
        return None if row is None else _click_with_cached_settings(row, with_latest_lead=with_latest_lead)
    row = fetch_one(CLICK_WITH_LEAD_SQL if with_latest_lead else CLICK_SQL, [click_id])
    return None if row is None else _click_from_row(row, with_latest_lead=with_latest_lead)


def _click_with_cached_settings(row: tuple, *, with_latest_lead: bool) -> Click | None:
    """The click of a CLICK_ALONE row with its link, campaign and pixel from the click settings' cache (None,
    as the joined read, when its campaign is gone). The link, campaign and pixel are shared by every click
    read in this process until the settings change: read them, never change them."""
    (click,), start = instances_from_row(_TABLES[:1], row)
    link = None if click.link_id is None else cached_setting(_links_by_id, click.link_id, lambda: _link(click.link_id))
    if link is not None and link.campaign_id == click.campaign_id:
        campaign = link.campaign
    else:
        campaign = cached_setting(_campaigns_by_id, click.campaign_id, lambda: _campaign(click.campaign_id))
    if campaign is None:
        return None
    click.campaign = campaign
    click.link = link
    if with_latest_lead:
        _attach_latest_lead(click, row[start:])
    return click


def _link(link_id: int) -> TrafficSource | None:
    row = fetch_one(LINK_SQL, [link_id])
    if row is None:
        return None
    (link, campaign, pixel), _ = instances_from_row(LINK_TABLES, row)
    campaign.pixel = pixel
    link.campaign = campaign
    return link


def _campaign(campaign_id: int) -> Campaign | None:
    row = fetch_one(CAMPAIGN_SQL, [campaign_id])
    if row is None:
        return None
    (campaign, pixel), _ = instances_from_row(LINK_TABLES[1:], row)
    campaign.pixel = pixel
    return campaign


# A batch's clicks in one statement: the same columns as CLICK_WITH_LEAD_SQL, any of the click ids.
CLICKS_WITH_LEAD_SQL = CLICK_WITH_LEAD_SQL.replace(
    'WHERE "click_id" = %s LIMIT 1', 'WHERE "click_id" = ANY(%s) OFFSET 0'
)


def clicks_with_campaign(click_ids: set[str]) -> dict[str, Click]:
    """click_with_campaign(…, with_latest_lead=True) for many click ids in one query: {click_id: click} for
    those that exist (a batch of conversions reads its clicks at once instead of one round trip each)."""
    if connection.vendor != "postgresql":
        found = (click_with_campaign(click_id, with_latest_lead=True) for click_id in click_ids)
        return {click.click_id: click for click in found if click is not None}
    with connection.cursor() as cursor:
        cursor.execute(CLICKS_WITH_LEAD_SQL, [sorted(click_ids)])
        rows = cursor.fetchall()
    clicks = (_click_from_row(row, with_latest_lead=True) for row in rows)
    return {click.click_id: click for click in clicks}


def _click_from_row(row: tuple, *, with_latest_lead: bool) -> Click:
    (click, link, campaign, pixel), start = instances_from_row(_TABLES, row)
    campaign.pixel = pixel
    click.campaign = campaign
    click.link = link
    if link is not None and link.campaign_id == campaign.pk:
        link.campaign = campaign
    if with_latest_lead:
        _attach_latest_lead(click, row[start:])
    return click


def _attach_latest_lead(click: Click, lead_values: tuple) -> None:
    click._latest_lead = None if lead_values[0] is None else model_from_row(Lead, lead_values)


def latest_lead(click: Click) -> Lead | None:
    """The Telegram user most recently attributed to this click, or None."""
    if hasattr(click, "_latest_lead"):  # read with the click (click_with_campaign)
        return click._latest_lead
    if connection.vendor != "postgresql":
        return click.leads.order_by("-attributed_at", "-id").first()
    row = fetch_one(LATEST_LEAD_SQL, [click.pk])
    return None if row is None else model_from_row(Lead, row)
