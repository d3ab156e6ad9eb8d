# One index fewer for every queued event (a landing view with a pixel writes one): pixel_id's own index, since
# the (pixel, event_id) constraint and the due, sent indexes all start with pixel_id. Only metadata changes.

import django.db.models.deletion
from django.db import migrations, models

from tracker.db.migration_ops import PostgresOrState

STATE = [
    migrations.AlterField(
        model_name="tiktokevent",
        name="pixel",
        field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="events",
                                to="tiktok_ads.pixel"),  # fmt: skip
    ),
]
POSTGRES_FORWARD = "DROP INDEX IF EXISTS tiktok_ads_tiktokevent_pixel_id_47c2c258;"
POSTGRES_BACKWARD = "CREATE INDEX tiktok_ads_tiktokevent_pixel_id_47c2c258 ON tiktok_ads_tiktokevent (pixel_id);"


class Migration(migrations.Migration):
    dependencies = [("tiktok_ads", "0002_due_index_with_id")]

    operations = [
        PostgresOrState(state_operations=STATE, postgres_forward=POSTGRES_FORWARD, postgres_backward=POSTGRES_BACKWARD)
    ]
