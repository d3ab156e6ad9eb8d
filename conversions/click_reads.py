"""The click a conversion names, with its link, campaign and pixel (and, for a conversion, the click's
latest lead), in one prepared query.

Intake looks a click up on every conversion. Through the ORM, compiling the same select_related query
(four tables, ~80 columns) cost about 1 ms of CPU per conversion, a quarter of the request
(bench/README.md). Here the SELECT is written once from the models and prepared; the rows become the same model
instances the ORM would build (Model.from_db, with the fields' own from_db_value), with the link,
campaign and pixel attached as select_related would attach them.
"""

from django.db import connection

from conversions.models import Campaign, Click, Lead, TrafficSource
from tiktok_ads.models import Pixel
from tracker.db.statements import Joined, fetch_one, instances_from_row, joined_clauses, joined_columns, model_from_row

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
CLICK_SQL = (
    f"SELECT {joined_columns(_TABLES)} "
    f'FROM (SELECT * FROM {_quote(Click._meta.db_table)} WHERE "click_id" = %s LIMIT 1) c {joined_clauses(_TABLES)}'
)


_LEAD_FIELDS = tuple(Lead._meta.concrete_fields)
_LEAD_COLUMNS = ", ".join(_quote(field.column) for field in _LEAD_FIELDS)
_LATEST_LEAD = (
    f'SELECT {_LEAD_COLUMNS} FROM {_quote(Lead._meta.db_table)} WHERE "click_id" = {{click}} '
    'ORDER BY "attributed_at" DESC, "id" DESC LIMIT 1'
)
LATEST_LEAD_SQL = _LATEST_LEAD.format(click="%s")
# A conversion needs the click's latest lead too: joined here, it costs no second round trip.
CLICK_WITH_LEAD_SQL = (
    CLICK_SQL.replace(" FROM (", ", " + ", ".join(f"ld.{_quote(f.column)}" for f in _LEAD_FIELDS) + " FROM (", 1)
    + f" LEFT JOIN LATERAL ({_LATEST_LEAD.format(click='c.id')}) ld ON true"
)


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
    row = fetch_one(CLICK_WITH_LEAD_SQL if with_latest_lead else CLICK_SQL, [click_id])
    return None if row is None else _click_from_row(row, with_latest_lead=with_latest_lead)


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
        lead_values = row[start:]
        click._latest_lead = None if lead_values[0] is None else model_from_row(Lead, lead_values)
    return click


def latest_lead(click: Click) -> Lead | None:
    """The Telegram user most recently attributed to this click, or None."""
    if hasattr(click, "_latest_lead"):  # read with the click (click_with_campaign)
        return click._latest_lead
    if connection.vendor != "postgresql":
        return click.leads.order_by("-attributed_at", "-id").first()
    row = fetch_one(LATEST_LEAD_SQL, [click.pk])
    return None if row is None else model_from_row(Lead, row)
