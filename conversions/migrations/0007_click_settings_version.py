"""A version number of what the click path caches (links, campaigns, pixels, landing pages), raised by
PostgreSQL itself on every statement that writes one of those tables, the admin's and any `.update()` or
raw SQL alike. A web worker reads this one row now and then instead of every cached link
(landing/selectors.py). Other databases have no trigger and keep the plain expiry."""

from django.db import migrations

TABLES = ("conversions_trafficsource", "conversions_campaign", "conversions_landingpage", "tiktok_ads_pixel")

CREATE = [
    "CREATE TABLE click_settings_version (id smallint PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)",
    "INSERT INTO click_settings_version (id, version) VALUES (1, 0)",
    # Statement-level: one bump per statement however many rows it writes. The bump commits with the change
    # (a sequence would be seen before the change is), so a worker that sees the new number sees the change.
    """CREATE FUNCTION click_settings_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE click_settings_version SET version = version + 1 WHERE id = 1;
        RETURN NULL;
    END $$""",
    *(
        f"CREATE TRIGGER click_settings_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION click_settings_changed()"
        for table in TABLES
    ),
]
DROP = [
    *(f"DROP TRIGGER IF EXISTS click_settings_changed ON {table}" for table in TABLES),
    "DROP FUNCTION IF EXISTS click_settings_changed()",
    "DROP TABLE IF EXISTS click_settings_version",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0006_hot_parents_unconstrained"),
        ("tiktok_ads", "0005_outbox_lighter_writes"),
    ]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP))]
