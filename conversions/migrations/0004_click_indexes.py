# Three indexes fewer for every click to maintain: the single-column ones on campaign_id and link_id (the
# composite indexes start with those columns) and the varchar_pattern_ops copy of click_id's unique index.
# Only metadata changes: the indexes are dropped and the unique constraint renamed, so the migration takes
# no time on a large clicks table (AlterField alone would re-create and re-validate both foreign keys and
# rebuild the unique index). SQLite keeps Django's own operations.

import django.db.models.deletion
from django.db import migrations, models

from tracker.db.migration_ops import PostgresOrState

STATE = [
    migrations.AlterField(
        model_name="click",
        name="campaign",
        field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="clicks",
                                to="conversions.campaign"),  # fmt: skip
    ),
    migrations.AlterField(model_name="click", name="click_id", field=models.CharField(max_length=64)),
    migrations.AlterField(
        model_name="click",
        name="link",
        field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT,
                                related_name="clicks", to="conversions.trafficsource"),  # fmt: skip
    ),
    migrations.AddConstraint(
        model_name="click",
        constraint=models.UniqueConstraint(fields=("click_id",), name="click_click_id_uniq"),
    ),
]

POSTGRES_FORWARD = """
DROP INDEX IF EXISTS conversions_click_campaign_id_96c3b9ad;
DROP INDEX IF EXISTS conversions_click_link_id_bb6687e2;
DROP INDEX IF EXISTS conversions_click_click_id_7db6d306_like;
ALTER TABLE conversions_click RENAME CONSTRAINT conversions_click_click_id_key TO click_click_id_uniq;
"""
POSTGRES_BACKWARD = """
ALTER TABLE conversions_click RENAME CONSTRAINT click_click_id_uniq TO conversions_click_click_id_key;
CREATE INDEX conversions_click_click_id_7db6d306_like ON conversions_click (click_id varchar_pattern_ops);
CREATE INDEX conversions_click_link_id_bb6687e2 ON conversions_click (link_id);
CREATE INDEX conversions_click_campaign_id_96c3b9ad ON conversions_click (campaign_id);
"""


class Migration(migrations.Migration):
    dependencies = [("conversions", "0003_hashed_contacts")]

    operations = [
        PostgresOrState(state_operations=STATE, postgres_forward=POSTGRES_FORWARD, postgres_backward=POSTGRES_BACKWARD)
    ]
