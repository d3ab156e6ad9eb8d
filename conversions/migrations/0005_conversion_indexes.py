# Three indexes fewer for every conversion to maintain: the varchar_pattern_ops copies of public_id's and
# dedup_key's unique indexes (nothing searches them with LIKE) and link_id's own index (conversion_link_status_idx
# starts with link_id). Only metadata changes, as in 0004: the indexes are dropped and the unique constraints
# renamed, so the migration takes no time on a large conversions table.

import django.db.models.deletion
from django.db import migrations, models

from tracker.db.migration_ops import PostgresOrState

STATE = [
    migrations.AlterField(model_name="conversion", name="dedup_key", field=models.CharField(max_length=300)),
    migrations.AlterField(
        model_name="conversion",
        name="link",
        field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT,
                                related_name="conversions", to="conversions.trafficsource"),  # fmt: skip
    ),
    migrations.AlterField(model_name="conversion", name="public_id", field=models.CharField(max_length=32)),
    migrations.AddConstraint(
        model_name="conversion",
        constraint=models.UniqueConstraint(fields=("public_id",), name="conversion_public_id_uniq"),
    ),
    migrations.AddConstraint(
        model_name="conversion",
        constraint=models.UniqueConstraint(fields=("dedup_key",), name="conversion_dedup_key_uniq"),
    ),
]

POSTGRES_FORWARD = """
DROP INDEX IF EXISTS conversions_conversion_public_id_7791e2fc_like;
DROP INDEX IF EXISTS conversions_conversion_dedup_key_f2815dc6_like;
DROP INDEX IF EXISTS conversions_conversion_link_id_db7dc28a;
ALTER TABLE conversions_conversion RENAME CONSTRAINT conversions_conversion_public_id_key TO conversion_public_id_uniq;
ALTER TABLE conversions_conversion RENAME CONSTRAINT conversions_conversion_dedup_key_key TO conversion_dedup_key_uniq;
"""
POSTGRES_BACKWARD = """
ALTER TABLE conversions_conversion RENAME CONSTRAINT conversion_dedup_key_uniq TO conversions_conversion_dedup_key_key;
ALTER TABLE conversions_conversion RENAME CONSTRAINT conversion_public_id_uniq TO conversions_conversion_public_id_key;
CREATE INDEX conversions_conversion_link_id_db7dc28a ON conversions_conversion (link_id);
CREATE INDEX conversions_conversion_dedup_key_f2815dc6_like ON conversions_conversion (dedup_key varchar_pattern_ops);
CREATE INDEX conversions_conversion_public_id_7791e2fc_like ON conversions_conversion (public_id varchar_pattern_ops);
"""


class Migration(migrations.Migration):
    dependencies = [("conversions", "0004_click_indexes")]

    operations = [
        PostgresOrState(state_operations=STATE, postgres_forward=POSTGRES_FORWARD, postgres_backward=POSTGRES_BACKWARD)
    ]
