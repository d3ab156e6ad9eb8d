"""Celery tasks for audiences: take ids, call a service, chain what is left. Nothing else."""

from celery import shared_task

# A sync run stops itself after AUDIENCE_SYNC_TIME_BUDGET_S (45 s by default); the limits leave it room.
SYNC_SOFT_LIMIT_S = 240
# A customer file of a million rows imports in well under a minute; these are for pathological files.
IMPORT_SOFT_LIMIT_S = 1200


@shared_task(ignore_result=True, acks_late=True, soft_time_limit=SYNC_SOFT_LIMIT_S, time_limit=SYNC_SOFT_LIMIT_S + 30)
def sync_audience(audience_id: int, trigger: str = "task"):
    """Refresh (rule audiences) and send one audience's changes; chain another run while time ran out."""
    from audiences.sync import audience_sync

    run = audience_sync(audience_id=audience_id, trigger=trigger)
    if run is not None and run.ok and run.more_pending:
        sync_audience.apply_async(args=[audience_id, trigger], retry=False)


@shared_task(ignore_result=True)
def sync_all():
    """Beat: a sync for every auto-sync audience with something to do; requeue lost file imports."""
    from audiences.selectors import audiences_to_sync
    from audiences.services import audience_syncs_prune, customer_file_requeue_stale

    for audience_id in audiences_to_sync():
        sync_audience.apply_async(args=[audience_id, "beat"], retry=False)
    customer_file_requeue_stale()
    audience_syncs_prune()


@shared_task(
    ignore_result=True, acks_late=True, soft_time_limit=IMPORT_SOFT_LIMIT_S, time_limit=IMPORT_SOFT_LIMIT_S + 60
)
def import_customer_file(import_id: int):
    """Import a large uploaded customer file kept on disk (the upload answered 202)."""
    from audiences.services import customer_file_import_stored

    customer_file_import_stored(import_id=import_id)
