"""Lighter writes for the outbox: each event is inserted, claimed and marked sent, three row versions.

- The sent and claimed indexes hold only the rows they are asked about (sent, being sent).
- created_at gets a BRIN index instead of a B-tree on PostgreSQL (no index elsewhere): the rows arrive in
  time order, and a B-tree gained an entry for each of the three versions.
- Half-empty pages (fillfactor 50, PostgreSQL only): the claim and the send then write the row's new
  version on its own page, and PostgreSQL logs only the bytes that changed instead of the whole row.

Measured on 20,000 events (bench/README.md, stop 20): WAL per event 2,940 → 1,636 bytes.

On PostgreSQL every index is built CONCURRENTLY (so the migration is not atomic): a large outbox keeps
taking events, and clicks with them, while they are built. A new index is built under a temporary name and
takes the old one's name once that is dropped.
"""

from django.db import migrations, models

from tracker.db.migration_ops import PostgresOrState

TABLE = "tiktok_ads_tiktokevent"
STATE = [
    migrations.RemoveIndex(model_name="tiktokevent", name="tiktokevent_sent_idx"),
    migrations.RemoveIndex(model_name="tiktokevent", name="tiktokevent_claimed_idx"),
    migrations.AlterField(model_name="tiktokevent", name="created_at", field=models.DateTimeField(auto_now_add=True)),
    migrations.AddIndex(
        model_name="tiktokevent",
        index=models.Index(
            condition=models.Q(("sent_at__isnull", False)), fields=["pixel", "sent_at"], name="tiktokevent_sent_idx"
        ),
    ),
    migrations.AddIndex(
        model_name="tiktokevent",
        index=models.Index(
            condition=models.Q(("status", "sending")), fields=["claimed_at"], name="tiktokevent_claimed_idx"
        ),
    ),
]


def replace_index(name: str, definition: str) -> list[str]:
    return [
        f"DROP INDEX CONCURRENTLY IF EXISTS {name}_new",  # an invalid one, left by a build that failed
        f"CREATE INDEX CONCURRENTLY {name}_new ON {TABLE} {definition}",
        f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
        f"ALTER INDEX {name}_new RENAME TO {name}",
    ]


POSTGRES_FORWARD = [
    *replace_index("tiktokevent_sent_idx", "(pixel_id, sent_at) WHERE sent_at IS NOT NULL"),
    *replace_index("tiktokevent_claimed_idx", "(claimed_at) WHERE status = 'sending'"),
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS tiktokevent_created_brin ON {TABLE} USING brin (created_at)",
    "DROP INDEX CONCURRENTLY IF EXISTS tiktok_ads_tiktokevent_created_at_00a31377",
    f"ALTER TABLE {TABLE} SET (fillfactor = 50)",
]
POSTGRES_BACKWARD = [
    f"ALTER TABLE {TABLE} RESET (fillfactor)",
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS tiktok_ads_tiktokevent_created_at_00a31377 ON {TABLE} (created_at)",
    "DROP INDEX CONCURRENTLY IF EXISTS tiktokevent_created_brin",
    *replace_index("tiktokevent_claimed_idx", "(status, claimed_at)"),
    *replace_index("tiktokevent_sent_idx", "(pixel_id, sent_at)"),
]


class Migration(migrations.Migration):
    atomic = False  # CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction
    dependencies = [("tiktok_ads", "0004_hot_parents_unconstrained")]

    operations = [
        PostgresOrState(state_operations=STATE, postgres_forward=POSTGRES_FORWARD, postgres_backward=POSTGRES_BACKWARD)
    ]
