"""Each index of the click, conversion and event tables is paid by every write of a viral hour: no index whose
leading columns another index already has, and no LIKE (varchar_pattern_ops) copy of a unique index."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

TABLES = ("conversions_click", "conversions_conversion", "tiktok_ads_tiktokevent")


def index_columns(table: str) -> dict[str, tuple[tuple[str, ...], str]]:
    """{index name: (its columns in order, its definition)} of one table."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT i.relname, array_agg(a.attname ORDER BY k.position), pg_get_indexdef(i.oid)
               FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
               CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, position)
               JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
               WHERE x.indrelid = %s::regclass GROUP BY i.relname, i.oid""",
            [table],
        )
        return {name: (tuple(columns), definition) for name, columns, definition in cursor.fetchall()}


@pytest.mark.parametrize("table", TABLES)
def test_no_index_repeats_the_leading_columns_of_another(table):
    indexes = index_columns(table)

    for name, (columns, definition) in indexes.items():
        assert "pattern_ops" not in definition, definition
        if "WHERE" in definition:  # a partial index serves its own rows only
            continue
        wider = [other for other, (more, _) in indexes.items() if other != name and more[: len(columns)] == columns
                 and len(more) > len(columns) and "UNIQUE" not in definition]  # fmt: skip
        assert not wider, f"{name} {columns} is the start of {wider}"


def test_the_unique_keys_intake_relies_on_are_there():
    conversion = index_columns("conversions_conversion")
    event = index_columns("tiktok_ads_tiktokevent")
    unique = {columns for columns, definition in [*conversion.values(), *event.values()] if "UNIQUE" in definition}

    assert {("dedup_key",), ("public_id",), ("pixel_id", "event_id")} <= unique


def test_an_event_enters_the_sent_and_claimed_indexes_only_when_it_is_sent_or_being_sent():
    event = index_columns("tiktok_ads_tiktokevent")

    assert event["tiktokevent_sent_idx"][0] == ("pixel_id", "sent_at")
    assert event["tiktokevent_sent_idx"][1].endswith("WHERE (sent_at IS NOT NULL)")
    assert event["tiktokevent_claimed_idx"][0] == ("claimed_at",)
    assert event["tiktokevent_claimed_idx"][1].endswith("WHERE ((status)::text = 'sending'::text)")
    assert "USING brin (created_at)" in event["tiktokevent_created_brin"][1]
    assert [name for name, (columns, _) in event.items() if "created_at" in columns] == ["tiktokevent_created_brin"]
