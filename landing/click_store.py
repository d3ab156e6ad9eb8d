"""The click INSERT: built once from the model, kept prepared by PostgreSQL on each connection, and
deciding in the same statement whether the click is unique.

The click path is the tracker's hottest write. Through the ORM, building the same 32-column INSERT took
about a third of a tracked click's CPU (bench/README.md); here the statement text is made once at import
and PostgreSQL parses and plans it once per connection. Unique: no unique click of the same visitor
(sha256 of IP + user agent) on the same link within UNIQUE_CLICK_WINDOW_HOURS, asked through the
(link, visitor_hash, created_at) index inside the INSERT, so a click is one round trip and needs nothing
but PostgreSQL. Two clicks of one visitor in the same millisecond may both count as unique: nothing is
locked for a counter.

Other databases (SQLite in development) use the ORM and a query. With PgBouncer in transaction mode,
prepared statements need PgBouncer 1.21+ with `max_prepared_statements` set (docs/scaling.md).
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction

from conversions.models import Click
from tiktok_ads.outbox import OUTBOX_INSERT_SQL, outbox_params
from tracker.db.statements import fetch_one, insert_columns, param_reader

_FIELDS = insert_columns(Click)
_read_params = param_reader(_FIELDS)
_quote = connection.ops.quote_name
_TABLE = _quote(Click._meta.db_table)
# The visitor's unique click within the window on the same link (or, for /click, on the campaign without a
# link): parameters place, visitor_hash, window start. Written so that only the (link, visitor_hash, …)
# index can serve it: `+ 0` and `+ interval '0'` keep the campaign and created_at indexes out. On a table
# without statistics yet (a new install's first viral hour) PostgreSQL otherwise walked the created_at
# index over the whole window for every click (1.5 ms a click at 6,000 clicks, and growing).
EARLIER_UNIQUE_SQL = {
    place: f'SELECT 1 FROM {_TABLE} WHERE {same_place} AND "visitor_hash" = %s'
    f' AND "created_at" + interval \'0\' >= %s AND "is_unique"'
    for place, same_place in (("link", '"link_id" = %s'), ("campaign", '"link_id" IS NULL AND "campaign_id" + 0 = %s'))
}


def _insert_sql(place: str) -> str:
    values = [
        f"(%s AND NOT EXISTS ({EARLIER_UNIQUE_SQL[place]}))" if field.attname == "is_unique" else "%s"
        for field in _FIELDS
    ]
    columns = ", ".join(_quote(field.column) for field in _FIELDS)
    return f'INSERT INTO {_TABLE} ({columns}) VALUES ({", ".join(values)}) RETURNING "id", "is_unique"'


INSERT_SQL = {place: _insert_sql(place) for place in EARLIER_UNIQUE_SQL}
# A landing view with a pixel: the click and its ViewContent outbox row in one statement, so both are
# written or neither is, in one round trip instead of BEGIN, two INSERTs and COMMIT.
INSERT_WITH_EVENT_SQL = {
    place: f"WITH click AS ({sql}), event AS ({OUTBOX_INSERT_SQL}) SELECT * FROM click"
    for place, sql in INSERT_SQL.items()
}


_UNIQUE_AT = next(index for index, field in enumerate(_FIELDS) if field.attname == "is_unique")


def _params(click: Click, since) -> list:
    params = _read_params(click)
    # is_unique's place takes the candidate flag and the unique check's parameters
    params[_UNIQUE_AT + 1 : _UNIQUE_AT + 1] = [click.link_id or click.campaign_id, click.visitor_hash, since]
    return params


def click_insert(click: Click, *, event: dict | None = None) -> None:
    """INSERT one new click and set its pk; with `event` (tiktok_ads.outbox.outbox_row) its outbox row too.
    On entry click.is_unique says whether it may be unique (not a bot); the database then keeps it only
    when the visitor has no unique click within the window."""
    since = click.created_at - timedelta(hours=settings.UNIQUE_CLICK_WINDOW_HOURS)
    if connection.vendor != "postgresql":
        _orm_insert(click, since, event)
        return
    place = "link" if click.link_id else "campaign"
    if event is None:
        sql, params = INSERT_SQL[place], _params(click, since)
    else:
        sql, params = INSERT_WITH_EVENT_SQL[place], _params(click, since) + outbox_params(event)
    click.pk, click.is_unique = fetch_one(sql, params)
    click._state.adding = False
    click._state.db = connection.alias


def _orm_insert(click: Click, since, event: dict | None) -> None:
    from tiktok_ads.models import TikTokEvent

    click.is_unique = click.is_unique and not _earlier_unique(click, since)
    with transaction.atomic():
        click.save(force_insert=True)
        if event is not None:
            TikTokEvent.objects.create(**event)


def _earlier_unique(click: Click, since) -> bool:
    return Click.objects.filter(
        link_id=click.link_id, campaign_id=click.campaign_id, visitor_hash=click.visitor_hash,
        created_at__gte=since, is_unique=True,
    ).exists()  # fmt: skip
