"""Set-based writes to audience membership: staged ids (from a file or the API) and rule refreshes.

Nothing here loops over members in Python. Ids are first written to a temporary table (PostgreSQL
COPY; plain inserts elsewhere), then one statement per transition moves the matching members:

    append   new ids → pending_add; removed / pending_remove ones → pending_add again
    remove   added / pending_add ids → pending_remove
    replace  append, and members not staged → pending_remove

Why pending_remove rather than deleting a never-sent pending_add: a sync may be sending that very
member right now. Its "mark as added" is conditional on the state it read, so it will not overwrite
pending_remove, and the next sync deletes it at TikTok; a deleted row would leave it there for good.
Only the rule refresh, which runs under the audience's sync lock, deletes never-sent members.
"""

import contextlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from audiences.models import HASH_REGEX, Audience, AudienceMember
from conversions.models import BotStart, Conversion, Lead

State = AudienceMember.State
MEMBERS = AudienceMember._meta.db_table
INSERT_CHUNK = 5000  # rows per INSERT where there is no COPY (SQLite)
COPY_BLOCK = 5000  # rows per COPY write
# pg_try_advisory_lock(namespace, audience id): one sync or rule refresh of an audience at a time.
LOCK_NAMESPACE = 0x41554449  # "AUDI"


@dataclass
class Changes:
    """How many members each statement moved."""

    to_add: int = 0  # became pending_add (new or back)
    to_remove: int = 0  # became pending_remove
    dropped: int = 0  # never sent, deleted (rule refresh only)


# --- the audience lock --------------------------------------------------------------------------


@contextlib.contextmanager
def audience_lock(audience_id: int):
    """Yield True when this session holds the audience's lock, False when another one does.

    A PostgreSQL session-level advisory lock: it is not tied to a transaction (a sync commits after
    every batch) and goes away with the connection if the worker dies. Other databases (the SQLite
    demo, one worker) have no concurrent writers to fear, so the lock is always granted there.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, audience_id])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, audience_id])


# --- what the sync sends -------------------------------------------------------------------------


def pending_batch(audience_id: int, state: str, *, after: tuple[str, str] | None, size: int) -> list[tuple]:
    """Up to `size` members in `state`, as (id, id_type, id_hash), after the (id_type, id_hash) given.

    Walks the unique index (audience, id_type, id_hash): there is no index on state (see the model), and
    the keyset keeps each batch from rereading the members already sent.
    """
    where, params = "audience_id = %s AND state = %s", [audience_id, state]
    if after is not None:
        where += " AND (id_type, id_hash) > (%s, %s)"
        params.extend(after)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Follow the index, always. Right after a large import the statistics still call the audience
            # small, and the planner would bitmap-scan and sort everything after the key for each batch:
            # 0.7 s instead of 30 ms a batch, quadratic over a million members.
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(
            f"SELECT id, id_type, id_hash FROM {MEMBERS} WHERE {where} ORDER BY id_type, id_hash LIMIT %s",
            [*params, size],
        )
        return cursor.fetchall()


def mark_sent(member_ids: list[int], *, sent_state: str, new_state: str) -> int:
    """Members TikTok accepted move on, but only those still in the state that was sent: one removed
    meanwhile stays pending_remove, so the next sync deletes it at TikTok."""
    now = timezone.now()
    if connection.vendor != "postgresql":
        return AudienceMember.objects.filter(pk__in=member_ids, state=sent_state).update(
            state=new_state, changed_at=now
        )
    # One array parameter rather than 10,000 placeholders: half the time per batch.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {MEMBERS} SET state = %s, changed_at = %s WHERE id = ANY(%s) AND state = %s",
            [new_state, now, member_ids, sent_state],
        )
        return cursor.rowcount


def members_analyze() -> None:
    """Fresh planner statistics after a bulk change (autovacuum would get there, later)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {MEMBERS}")


# --- staged ids ---------------------------------------------------------------------------------


class StagedIds:
    """A temporary table of (id_type, id_hash) for one transaction. Use inside transaction.atomic()."""

    def __init__(self, cursor):
        self.cursor = cursor
        self.table = f"audience_stage_{uuid.uuid4().hex[:16]}"
        self.count = 0
        self._analyzed = True

    def __enter__(self):
        if not connection.in_atomic_block:
            raise RuntimeError("StagedIds works inside transaction.atomic(): its table lives until the commit")
        on_commit = "ON COMMIT DROP" if connection.vendor == "postgresql" else ""
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.table} (id_type varchar(16) NOT NULL, id_hash varchar(64) NOT NULL) "
            f"{on_commit}"
        )
        return self

    def __exit__(self, *exc_info):
        if connection.vendor != "postgresql":
            self.cursor.execute(f"DROP TABLE IF EXISTS {self.table}")

    def write(self, ids: Iterable[tuple[str, str]]) -> int:
        """Stream (id_type, id_hash) pairs into the table; returns how many were written."""
        if connection.vendor == "postgresql":
            with self.cursor.copy(f"COPY {self.table} (id_type, id_hash) FROM STDIN") as copy:
                for pair in ids:
                    copy.write_row(pair)
                    self.count += 1
            self._analyzed = False
            return self.count
        chunk = []
        for pair in ids:
            chunk.append(pair)
            if len(chunk) >= INSERT_CHUNK:
                self._insert(chunk)
                chunk = []
        self._insert(chunk)
        self._analyzed = False
        return self.count

    def write_blocks(self, blocks: Iterable["CopyBlock"]) -> int:
        """Write ids already turned into COPY text (copy_blocks); returns how many were written."""
        if connection.vendor != "postgresql":
            return self.write(pair for block in blocks for pair in block.pairs())
        with self.cursor.copy(f"COPY {self.table} (id_type, id_hash) FROM STDIN") as copy:
            for block in blocks:
                copy.write(block.text)
                self.count += block.count
        self._analyzed = False
        return self.count

    def _analyze(self) -> None:
        # Temporary tables are never auto-analysed; without numbers the planner guesses badly.
        if connection.vendor == "postgresql" and not self._analyzed:
            self.cursor.execute(f"ANALYZE {self.table}")
        self._analyzed = True

    def _insert(self, chunk: list) -> None:
        if chunk:
            self.cursor.executemany(f"INSERT INTO {self.table} (id_type, id_hash) VALUES (%s, %s)", chunk)
            self.count += len(chunk)

    def _exists(self, negate: bool = False) -> str:
        return (
            f"{'NOT ' if negate else ''}EXISTS (SELECT 1 FROM {self.table} s "
            f"WHERE s.id_type = {MEMBERS}.id_type AND s.id_hash = {MEMBERS}.id_hash)"
        )

    def apply_append(self, audience_id: int) -> Changes:
        back = self.apply_back(audience_id)
        return Changes(to_add=back + self.insert_new(audience_id))

    def apply_back(self, audience_id: int) -> int:
        """Removed and pending_remove members staged here become pending_add again; returns how many."""
        self._analyze()
        self.cursor.execute(
            f"UPDATE {MEMBERS} SET state = %s, changed_at = %s "
            f"WHERE audience_id = %s AND state IN (%s, %s) AND {self._exists()}",
            [State.PENDING_ADD, timezone.now(), audience_id, State.REMOVED, State.PENDING_REMOVE],
        )
        return self.cursor.rowcount

    def insert_new(self, audience_id: int) -> int:
        """Staged ids not in the audience yet become pending_add members; returns how many."""
        # Sorted, so the unique index is filled in order rather than at random places (half the time for a
        # million ids); byte order ("C") sorts fastest and is the order of hex digests in any collation.
        # No DISTINCT: DO NOTHING skips an id repeated in the file like one already in the audience.
        binary = ' COLLATE "C"' if connection.vendor == "postgresql" else ""
        self.cursor.execute(
            f"INSERT INTO {MEMBERS} (audience_id, id_type, id_hash, state, changed_at) "
            f"SELECT %s, id_type, id_hash, %s, %s FROM {self.table} "
            f"ORDER BY id_type{binary}, id_hash{binary} "
            f"ON CONFLICT (audience_id, id_type, id_hash) DO NOTHING",
            [audience_id, State.PENDING_ADD, timezone.now()],
        )
        return self.cursor.rowcount

    def apply_remove(self, audience_id: int, *, keep_staged: bool = False) -> Changes:
        """Members staged (or, with keep_staged, members not staged) become pending_remove."""
        self._analyze()
        self.cursor.execute(
            f"UPDATE {MEMBERS} SET state = %s, changed_at = %s "
            f"WHERE audience_id = %s AND state IN (%s, %s) AND {self._exists(negate=keep_staged)}",
            [State.PENDING_REMOVE, timezone.now(), audience_id, State.ADDED, State.PENDING_ADD],
        )
        return Changes(to_remove=self.cursor.rowcount)


class CopyBlock(NamedTuple):
    """(id_type, id_hash) pairs as lines of COPY text: one write each, and half the memory of the tuples."""

    text: str
    count: int

    def pairs(self) -> list[tuple[str, ...]]:
        return [tuple(line.split("\t")) for line in self.text.splitlines()]


def copy_blocks(ids: Iterable[tuple[str, str]], size: int = COPY_BLOCK) -> Iterator[CopyBlock]:
    """The pairs, `size` at a time, as CopyBlocks. Only for ids that customer_files.read_ids gave: id type
    names and hex digests, nothing COPY would need escaped (StagedIds.write escapes, for any other source)."""
    lines = []
    for id_type, id_hash in ids:
        lines.append(f"{id_type}\t{id_hash}\n")
        if len(lines) >= size:
            yield CopyBlock("".join(lines), len(lines))
            lines = []
    if lines:
        yield CopyBlock("".join(lines), len(lines))


def append_while_reading(
    staged: StagedIds, audience_id: int, chunks: Iterable[list[CopyBlock]], *, keep: bool
) -> Changes:
    """apply_append for a long file, read in chunks (customer_files.read_ahead reads the next one meanwhile).

    Each chunk's new ids are inserted as soon as it is read, so PostgreSQL inserts while Python reads and
    hashes (before, the database sat idle for the first third of a large import). Members coming back
    (removed / pending_remove) are found once, at the end, over the whole file in `staged`: per chunk it
    would take a pass over the audience each time. `staged` only receives the ids when that pass is
    needed or the caller asks to `keep` them (replace); its count is always that of the whole file.
    """
    returning = _has_returning(audience_id)
    added = 0
    for chunk in chunks:
        with StagedIds(staged.cursor) as part:
            part.write_blocks(chunk)
            added += part.insert_new(audience_id)
        if returning or keep:
            staged.write_blocks(chunk)
        else:
            staged.count += sum(block.count for block in chunk)
    back = staged.apply_back(audience_id) if returning else 0
    return Changes(to_add=added + back)


def _has_returning(audience_id: int) -> bool:
    return AudienceMember.objects.filter(
        audience_id=audience_id, state__in=[State.REMOVED, State.PENDING_REMOVE]
    ).exists()


# --- rule audiences -----------------------------------------------------------------------------


def _hash_check(column: str) -> str:
    operator = "~" if connection.vendor == "postgresql" else "REGEXP"
    return f"{column} {operator} '{HASH_REGEX}'"


def rule_goals(audience: Audience) -> list[str] | None:
    """The conversion goals a rule audience matches; None when any goal does."""
    if audience.rule_goal:
        return [audience.rule_goal]
    if not audience.rule_event:
        return None
    goal_events = audience.pixel.goal_events or {}
    return sorted(goal for goal, event in goal_events.items() if event == audience.rule_event)


def rule_matches_sql(audience: Audience) -> tuple[str, list]:
    """SQL for the (id_type, id_hash) set a rule audience should hold, with its parameters.

    A person is the lead when the conversion has one, else its customer_id, else the conversion itself;
    their ids are every email and phone hash known from their matching conversions and their lead.
    Only approved conversions count: a refunded (rejected) one drops out at the next refresh.
    CompleteRegistration also counts the bot starts (the tracker sends them to TikTok as that event).
    """
    conversions, leads, starts = Conversion._meta.db_table, Lead._meta.db_table, BotStart._meta.db_table
    since = timezone.now() - timedelta(days=audience.rule_within_days) if audience.rule_within_days else None
    where, params = ["c.status = %s"], [Conversion.Status.APPROVED]
    goals = rule_goals(audience)
    if goals is not None:
        if goals:
            where.append(f"c.goal IN ({', '.join(['%s'] * len(goals))})")
            params.extend(goals)
        else:
            where.append("1 = 0")  # the event is mapped from no goal of this pixel
    if audience.rule_campaign_id:
        where.append("c.campaign_id = %s")
        params.append(audience.rule_campaign_id)
    if since is not None:
        where.append("c.created_at >= %s")
        params.append(since)
    occurrences = (
        f"SELECT COALESCE('lead:' || c.lead_id, NULLIF('customer:' || c.customer_id, 'customer:'), "
        f"'conversion:' || c.id) AS person, c.amount_minor AS amount_minor, "
        f"c.email_sha256 AS email_a, c.phone_sha256 AS phone_a, "
        f"COALESCE(l.email_sha256, '') AS email_b, COALESCE(l.phone_sha256, '') AS phone_b "
        f"FROM {conversions} c LEFT JOIN {leads} l ON l.id = c.lead_id WHERE {' AND '.join(where)}"
    )
    if audience.rule_event == "CompleteRegistration" and not audience.rule_goal:
        start_where, start_params = ["1 = 1"], []
        if audience.rule_campaign_id:
            start_where.append("s.campaign_id = %s")
            start_params.append(audience.rule_campaign_id)
        if since is not None:
            start_where.append("s.created_at >= %s")
            start_params.append(since)
        occurrences += (
            f" UNION ALL SELECT 'lead:' || s.lead_id, 0, '', '', l.email_sha256, l.phone_sha256 "
            f"FROM {starts} s JOIN {leads} l ON l.id = s.lead_id WHERE {' AND '.join(start_where)}"
        )
        params.extend(start_params)
    having, having_params = "COUNT(*) >= %s", [audience.rule_min_purchases]
    if audience.rule_min_value_minor is not None:
        having += " AND SUM(amount_minor) >= %s"
        having_params.append(audience.rule_min_value_minor)
    ids = " UNION ".join(
        f"SELECT '{id_type}' AS id_type, o.{column} AS id_hash FROM occurrences o "
        f"JOIN people p ON p.person = o.person WHERE {_hash_check('o.' + column)}"
        for id_type, column in (
            (AudienceMember.IdType.EMAIL_SHA256, "email_a"),
            (AudienceMember.IdType.EMAIL_SHA256, "email_b"),
            (AudienceMember.IdType.PHONE_SHA256, "phone_a"),
            (AudienceMember.IdType.PHONE_SHA256, "phone_b"),
        )
    )
    sql = (
        f"WITH occurrences AS ({occurrences}), "
        f"people AS (SELECT person FROM occurrences GROUP BY person HAVING {having}), "
        f"matched AS ({ids})"
    )
    return sql, params + having_params


def _changed_rows(cursor) -> int:
    # Python's sqlite3 reports no rowcount for a statement that starts with WITH; SQLite itself knows.
    if connection.vendor == "postgresql":
        return cursor.rowcount
    cursor.execute("SELECT changes()")
    return cursor.fetchone()[0]


def rule_refresh_members(audience: Audience) -> Changes:
    """Bring a rule audience's members in line with its rule. Call it holding the audience lock.

    New matches and members that match again become pending_add; added members that no longer match
    become pending_remove; pending_add members that no longer match were never sent and are deleted.
    """
    matched_sql, params = rule_matches_sql(audience)
    now = timezone.now()
    not_matched = (
        f"NOT EXISTS (SELECT 1 FROM matched m WHERE m.id_type = {MEMBERS}.id_type AND m.id_hash = {MEMBERS}.id_hash)"
    )
    changes = Changes()
    with connection.cursor() as cursor:
        cursor.execute(
            f"{matched_sql} INSERT INTO {MEMBERS} (audience_id, id_type, id_hash, state, changed_at) "
            f"SELECT %s, id_type, id_hash, %s, %s FROM matched WHERE 1 = 1 "
            f"ON CONFLICT (audience_id, id_type, id_hash) DO UPDATE SET state = EXCLUDED.state, "
            f"changed_at = EXCLUDED.changed_at WHERE {MEMBERS}.state IN (%s, %s)",
            [*params, audience.pk, State.PENDING_ADD, now, State.REMOVED, State.PENDING_REMOVE],
        )
        changes.to_add = _changed_rows(cursor)
        cursor.execute(
            f"{matched_sql} UPDATE {MEMBERS} SET state = %s, changed_at = %s "
            f"WHERE audience_id = %s AND state = %s AND {not_matched}",
            [*params, State.PENDING_REMOVE, now, audience.pk, State.ADDED],
        )
        changes.to_remove = _changed_rows(cursor)
        cursor.execute(
            f"{matched_sql} DELETE FROM {MEMBERS} WHERE audience_id = %s AND state = %s AND {not_matched}",
            [*params, audience.pk, State.PENDING_ADD],
        )
        changes.dropped = _changed_rows(cursor)
    return changes
