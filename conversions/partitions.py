"""The clicks table partitioned by ranges of id, each holding about a month of clicks (docs/scaling.md, step 5).

`manage.py partition_clicks` turns the table into a partitioned one in place, on PostgreSQL: the existing
table becomes the first partition (no row is copied), the next partition is made empty, and an hourly job
(`conversions.tasks.extend_click_partitions`) adds a partition whenever fewer than a month of ids is left
ahead. Ranges of `id` keep `id` the primary key, so the foreign keys of leads, bot starts and conversions,
the rollup's id cursor and every query by id work as before.

What changes with partitions:
- `click_id` is unique within each partition (a unique index on each), no longer across the table: a
  partitioned table's unique constraints must contain its partition key. Click ids are 96 random bits.
- The click INSERT's unique check and the intake's lookup by click_id do not name `id`: PostgreSQL probes
  every partition's index for them, so keep the partitions few (docs/scaling.md).
- A migration that adds an index to the clicks table cannot build it CONCURRENTLY on the partitioned table.

The conversion holds the table's exclusive lock only for renames and catalog changes: the existing rows are
checked against the first partition's bound before it (without blocking clicks), and the foreign keys that
point at the table are re-pointed without a check under the lock, then validated after it.
"""

import re
from dataclasses import dataclass

from django.db import connection, transaction

from conversions.models import Click

TABLE = Click._meta.db_table
MIN_BLOCK = 1_000_000  # ids in a partition at least
BLOCK_DAYS = 30  # a partition holds about the ids of this many days of clicks
_BOUND = re.compile(r"FOR VALUES FROM \((MINVALUE|'?-?\d+'?)\) TO \((MAXVALUE|'?-?\d+'?)\)")


class PartitioningError(Exception):
    pass


@dataclass(frozen=True)
class Partition:
    name: str
    lower: int | None  # None: from the lowest id
    upper: int  # the first id it does not hold


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def clicks_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def click_partitions() -> list[Partition]:
    """The partitions of the clicks table, lowest ids first (empty when it is not partitioned: a plain table
    has no rows in pg_inherits)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [TABLE],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, bound in rows:
        lower, upper = _BOUND.fullmatch(bound).groups()
        partitions.append(
            Partition(name, None if lower == "MINVALUE" else int(lower.strip("'")), int(upper.strip("'")))
        )
    return sorted(partitions, key=lambda partition: partition.upper)


def next_click_id() -> int:
    """The id the next click gets (from the table's identity sequence)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        sequence = cursor.fetchone()[0]
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
        last_value, is_called = cursor.fetchone()
    return last_value + 1 if is_called else last_value


def click_ids_left() -> int | None:
    """Ids the partitions still hold beyond the next click's (None when the table is not partitioned): a click
    past the last partition would fail, so /metrics shows it (tracker_click_ids_left)."""
    partitions = click_partitions()
    return partitions[-1].upper - next_click_id() if partitions else None


def block_size() -> int:
    """Ids for one partition: those the last BLOCK_DAYS days of clicks took, at least MIN_BLOCK."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT "id" FROM {_q(TABLE)} WHERE "created_at" >= now() - make_interval(days => %s) '
            'ORDER BY "created_at" LIMIT 1',
            [BLOCK_DAYS],
        )
        row = cursor.fetchone()
    recent = next_click_id() - row[0] if row else 0
    return max(MIN_BLOCK, recent)


def clicks_partition(*, block: int | None = None, lock_timeout_ms: int = 2000) -> list[Partition]:
    """Make the clicks table partitioned: the table as it is becomes the first partition, holding the ids up
    to one block beyond the next; the next partition holds one block more. Nothing when already done."""
    if connection.vendor != "postgresql":
        raise PartitioningError("Partitioning needs PostgreSQL.")
    if clicks_partitioned():
        return click_partitions()
    block = block or block_size()
    first, bound = _partition_name(0), next_click_id() + block
    indexes, foreign_keys = _indexes(), _foreign_keys_to_clicks()
    check = _q(first + "_bound")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        # A run that gave up at the lock below left it: it is made again with this run's bound.
        cursor.execute(
            f"ALTER TABLE {_q(TABLE)} DROP CONSTRAINT IF EXISTS {check}, "
            f"ADD CONSTRAINT {check} CHECK (id < {bound}) NOT VALID"
        )
    with connection.cursor() as cursor:
        # Checked while clicks go on (SHARE UPDATE EXCLUSIVE): ATTACH then trusts it instead of scanning.
        cursor.execute(f"ALTER TABLE {_q(TABLE)} VALIDATE CONSTRAINT {check}")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        cursor.execute(f"LOCK TABLE {_q(TABLE)} IN ACCESS EXCLUSIVE MODE")
        next_id = next_click_id()  # exact now: no click is written while the lock is held
        _set_aside(cursor, first, indexes)
        _partitioned_table(cursor, first, indexes, next_id=next_id)
        cursor.execute(f"ALTER TABLE {_q(TABLE)} ATTACH PARTITION {_q(first)} FOR VALUES FROM (MINVALUE) TO ({bound})")
        _add_partition(cursor, number=1, lower=bound, upper=bound + block)
        for table, name, definition in foreign_keys:
            cursor.execute(
                f"ALTER TABLE {_q(table)} DROP CONSTRAINT {_q(name)}, ADD CONSTRAINT {_q(name)} {definition} NOT VALID"
            )
    with connection.cursor() as cursor:
        for table, name, _ in foreign_keys:
            cursor.execute(f"ALTER TABLE {_q(table)} VALIDATE CONSTRAINT {_q(name)}")
    return click_partitions()


def _set_aside(cursor, first: str, indexes: list["_Index"]) -> None:
    """The clicks table under the first partition's name, its indexes and constraints renamed (the partitioned
    table's take the names the migrations know) and its id without the sequence (the partitioned table's)."""
    cursor.execute(f"ALTER TABLE {_q(TABLE)} RENAME TO {_q(first)}")
    for index in indexes:
        kept_as = _partition_object_name(index.name, 0)
        if index.constraint:
            cursor.execute(f"ALTER TABLE {_q(first)} RENAME CONSTRAINT {_q(index.constraint)} TO {_q(kept_as)}")
        else:
            cursor.execute(f"ALTER INDEX {_q(index.name)} RENAME TO {_q(kept_as)}")
    cursor.execute(f"ALTER TABLE {_q(first)} ALTER COLUMN id DROP IDENTITY")


def _partitioned_table(cursor, first: str, indexes: list["_Index"], *, next_id: int) -> None:
    """The partitioned clicks table: the first partition's columns, the id sequence going on from next_id, and
    the indexes as they were (attaching the first partition then adopts its own instead of building them)."""
    cursor.execute(
        f"CREATE TABLE {_q(TABLE)} (LIKE {_q(first)} INCLUDING DEFAULTS INCLUDING STORAGE) PARTITION BY RANGE (id)"
    )
    cursor.execute(
        f"ALTER TABLE {_q(TABLE)} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {next_id})"
    )
    for index in indexes:
        if index.primary:
            cursor.execute(f"ALTER TABLE {_q(TABLE)} ADD CONSTRAINT {_q(index.constraint)} PRIMARY KEY (id)")
        elif not index.unique:  # click_id's unique index is per partition
            cursor.execute(index.definition)


def extend_click_partitions(*, block: int | None = None, lock_timeout_ms: int = 1000) -> Partition | None:
    """Add the next partition when fewer than one block of ids is left ahead; the new one, or None."""
    partitions = click_partitions()
    if not partitions:
        return None
    block = block or block_size()
    last = partitions[-1]
    if last.upper - next_click_id() >= block:
        return None
    number = int(last.name.rsplit("_p", 1)[1]) + 1
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        return _add_partition(cursor, number=number, lower=last.upper, upper=last.upper + block)


def _add_partition(cursor, *, number: int, lower: int, upper: int) -> Partition:
    """An empty partition for ids lower..upper-1, made apart and attached: attaching locks the clicks table
    only against other schema changes (SHARE UPDATE EXCLUSIVE), so clicks go on."""
    name = _partition_name(number)
    cursor.execute(f"CREATE TABLE {_q(name)} (LIKE {_q(TABLE)} INCLUDING DEFAULTS INCLUDING STORAGE)")
    cursor.execute(
        f"ALTER TABLE {_q(name)} ADD CONSTRAINT {_q(name + '_bound')} CHECK (id >= {lower} AND id < {upper})"
    )
    cursor.execute(f'CREATE UNIQUE INDEX {_q(name + "_click_id_uniq")} ON {_q(name)} ("click_id")')
    cursor.execute(f"ALTER TABLE {_q(TABLE)} ATTACH PARTITION {_q(name)} FOR VALUES FROM ({lower}) TO ({upper})")
    return Partition(name, lower, upper)


def _partition_name(number: int) -> str:
    return f"{TABLE}_p{number:04d}"


def _partition_object_name(name: str, number: int) -> str:
    renamed = f"{name}_p{number:04d}"
    if len(renamed) > 63:  # PostgreSQL's identifier limit
        raise PartitioningError(f"{renamed} is longer than 63 characters")
    return renamed


@dataclass(frozen=True)
class _Index:
    name: str
    definition: str  # CREATE INDEX … ON the clicks table
    primary: bool
    unique: bool
    constraint: str | None  # the constraint it backs (primary key, unique), if any


def _indexes() -> list[_Index]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique, con.conname "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid "
            "WHERE i.indrelid = to_regclass(%s) ORDER BY c.relname",
            [TABLE],
        )
        return [_Index(*row) for row in cursor.fetchall()]


def _foreign_keys_to_clicks() -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of each foreign key that points at the clicks table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND confrelid = to_regclass(%s) ORDER BY 1, 2",
            [TABLE],
        )
        return cursor.fetchall()
