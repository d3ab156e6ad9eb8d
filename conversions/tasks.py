from datetime import timedelta

from celery import shared_task
from django.utils import timezone


@shared_task(ignore_result=True)
def rollup_refresh():
    from conversions.rollups import rollup_refresh as refresh

    refresh()


@shared_task(ignore_result=True)
def rollup_reconcile():
    """Recount today and yesterday from raw rows: repairs anything a crashed refresh left."""
    from conversions.rollups import rollup_reconcile as reconcile

    today = timezone.now().date()
    for day in (today - timedelta(days=1), today):
        reconcile(day=day)


@shared_task(ignore_result=True)
def purge_old_clicks():
    """Daily: apply RETENTION_DAYS (nothing when it is 0)."""
    from django.conf import settings

    from conversions.privacy import clicks_purge

    if settings.RETENTION_DAYS > 0:
        clicks_purge(older_than_days=settings.RETENTION_DAYS)


@shared_task(ignore_result=True)
def extend_click_partitions():
    """Hourly: once the clicks table is partitioned (manage.py partition_clicks), add the next partition
    before the ids run out. Nothing otherwise."""
    from conversions.partitions import extend_click_partitions as extend

    extend()
