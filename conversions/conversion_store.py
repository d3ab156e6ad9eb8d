"""A new conversion in one statement: its row, its first status change and, when it sends one, its TikTok
event's outbox row; nothing when its dedup_key is already taken (a repeat).

Through the ORM this was BEGIN, two built INSERTs, the outbox INSERT and COMMIT: five round trips and
about a fifth of a conversion's CPU (bench/README.md). One prepared statement keeps the same guarantees:
the three rows are written together or not at all, and the unique dedup_key decides what is a repeat,
also between two identical requests at the same moment. Other databases (SQLite in development) use
the ORM.
"""

from django.db import IntegrityError, connection, transaction

from conversions.models import Click, Conversion, ConversionStatusChange, TrafficSource
from tiktok_ads.outbox import outbox_insert_sql_after, outbox_params
from tracker.db.statements import (
    Joined,
    fetch_one,
    insert_columns,
    instances_from_row,
    joined_select,
    param_reader,
)

_FIELDS = insert_columns(Conversion)
_read_params = param_reader(_FIELDS)
_quote = connection.ops.quote_name
_CONVERSION_SQL = (
    f"INSERT INTO {_quote(Conversion._meta.db_table)} ({', '.join(_quote(field.column) for field in _FIELDS)}) "
    f"VALUES ({', '.join('%s' for _ in _FIELDS)}) ON CONFLICT ({_quote('dedup_key')}) DO NOTHING RETURNING id"
)
_CHANGE_SQL = (
    f"INSERT INTO {_quote(ConversionStatusChange._meta.db_table)} "
    "(conversion_id, old_status, new_status, old_amount_minor, new_amount_minor, created_at) "
    "SELECT id, '', %s, NULL, %s, %s FROM conversion"
)
INSERT_SQL = f"WITH conversion AS ({_CONVERSION_SQL}), change AS ({_CHANGE_SQL}) SELECT id FROM conversion"
INSERT_WITH_EVENT_SQL = (
    f"WITH conversion AS ({_CONVERSION_SQL}), change AS ({_CHANGE_SQL}), "
    f"event AS ({outbox_insert_sql_after('conversion')}) SELECT id FROM conversion"
)


def conversion_insert(conversion: Conversion, *, event: dict | None = None) -> bool:
    """INSERT a new conversion, its first status change and `event` (tiktok_ads.outbox.outbox_row) if given.
    True when written; False when a conversion with the same dedup_key exists (then nothing is written)."""
    if connection.vendor != "postgresql":
        return _orm_insert(conversion, event)
    params = _read_params(conversion) + [conversion.status, conversion.amount_minor, conversion.created_at]
    if event is None:
        row = fetch_one(INSERT_SQL, params)
    else:
        row = fetch_one(INSERT_WITH_EVENT_SQL, params + outbox_params(event))
    if row is None:
        return False
    conversion.pk = row[0]
    conversion._state.adding = False
    conversion._state.db = connection.alias
    return True


def _orm_insert(conversion: Conversion, event: dict | None) -> bool:
    from tiktok_ads.models import TikTokEvent

    try:
        with transaction.atomic():
            conversion.save(force_insert=True)
            ConversionStatusChange.objects.create(
                conversion=conversion, old_status="", new_status=conversion.status,
                new_amount_minor=conversion.amount_minor,
            )  # fmt: skip
            if event is not None:
                TikTokEvent.objects.create(**event)
        return True
    except IntegrityError:
        if not Conversion.objects.filter(dedup_key=conversion.dedup_key).exists():
            raise
        return False


# A repeat answers with the stored conversion, its link's utm_id and its click's click_id: read together in one
# prepared statement (through the ORM, the read and the two lazy loads of the answer were 3 round trips and
# most of a repeat's CPU; 10 % of a partner's postbacks may be repeats). The click is read by its id alone
# (LATERAL … LIMIT 1): on a partitioned clicks table (conversions/partitions.py) a plain join read every click of
# every partition through their primary keys, filtering by the join: 2.9 ms of PostgreSQL a conversion under
# load at ~60,000 clicks.
_STORED = (
    Joined(Conversion, "cv"),
    Joined(TrafficSource, "l", 'LEFT JOIN {table} l ON l."id" = cv."link_id"'),
    Joined(Click, "c", 'LEFT JOIN LATERAL (SELECT * FROM {table} WHERE "id" = cv."click_id" LIMIT 1) c ON true'),
)
STORED_SQL = joined_select(_STORED, 'cv."dedup_key" = %s')


def stored_conversion(dedup_key: str) -> Conversion | None:
    """The conversion with this dedup_key, its link and click attached; or None. Not locked."""
    if connection.vendor != "postgresql":
        return Conversion.objects.select_related("link", "click").filter(dedup_key=dedup_key).first()
    row = fetch_one(STORED_SQL, [dedup_key])
    if row is None:
        return None
    (conversion, link, click), _ = instances_from_row(_STORED, row)
    conversion.link, conversion.click = link, click
    return conversion
