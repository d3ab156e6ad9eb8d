"""Lighter writes for the outbox: each event is inserted, claimed and marked sent, three row versions.

- The sent and claimed indexes hold only the rows they are asked about (sent, being sent).
- created_at gets a BRIN index instead of a B-tree on PostgreSQL (no index elsewhere): the rows arrive in
  time order, and a B-tree gained an entry for each of the three versions.
- Half-empty pages (fillfactor 50, PostgreSQL only): the claim and the send then write the row's new
  version on its own page, and PostgreSQL logs only the bytes that changed instead of the whole row.

Measured on 20,000 events (bench/README.md, stop 20): WAL per event 2,940 → 1,636 bytes.
"""

from django.db import migrations, models

CREATED_AT_BRIN = "tiktokevent_created_brin"


def postgres_storage(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE tiktok_ads_tiktokevent SET (fillfactor = 50)")
        schema_editor.execute(f"CREATE INDEX {CREATED_AT_BRIN} ON tiktok_ads_tiktokevent USING brin (created_at)")


def postgres_storage_undo(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {CREATED_AT_BRIN}")
        schema_editor.execute("ALTER TABLE tiktok_ads_tiktokevent RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("tiktok_ads", "0004_hot_parents_unconstrained")]

    operations = [
        migrations.RemoveIndex(model_name="tiktokevent", name="tiktokevent_sent_idx"),
        migrations.RemoveIndex(model_name="tiktokevent", name="tiktokevent_claimed_idx"),
        migrations.AlterField(
            model_name="tiktokevent", name="created_at", field=models.DateTimeField(auto_now_add=True)
        ),
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
        migrations.RunPython(postgres_storage, postgres_storage_undo, elidable=False),
    ]
