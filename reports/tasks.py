import time
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

CATCH_UP_BUDGET_S = 30


@shared_task(ignore_result=True)
def report_rollup_refresh():
    """Refresh in committed steps until up to date or the budget is spent (the next run goes on)."""
    from reports.rollups import report_rollup_refresh as refresh

    started = time.monotonic()
    while any(refresh().values()) and time.monotonic() - started < CATCH_UP_BUDGET_S:
        pass


@shared_task(ignore_result=True, soft_time_limit=900, time_limit=960)
def report_rollup_reconcile():
    """Recount today and yesterday (UTC) from the raw rows: repairs anything a crashed refresh left."""
    from reports.rollups import report_rollup_reconcile as reconcile

    today = timezone.now().date()
    for day in (today - timedelta(days=1), today):
        reconcile(day=day)


@shared_task(ignore_result=True)
def rules_evaluate():
    from reports.services import rules_evaluate as evaluate

    evaluate()
