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
