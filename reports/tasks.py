import time
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

CATCH_UP_BUDGET_S = 30


@shared_task(ignore_result=True)
def report_rollup_refresh():
    """Refresh in committed steps while a step is full (a backlog), until the budget is spent.

    A step that was not full means the tables are up to date: looping on would only chase the newest
    rows one by one while a burst of them arrives."""
    from reports.rollups import MAX_ROWS_PER_REFRESH
    from reports.rollups import report_rollup_refresh as refresh

    started = time.monotonic()
    while max(refresh().values()) >= MAX_ROWS_PER_REFRESH and time.monotonic() - started < CATCH_UP_BUDGET_S:
        pass


@shared_task(ignore_result=True, soft_time_limit=900, time_limit=960)
def report_rollup_reconcile():
    """Recount today and yesterday (UTC) up to the cursors: repairs anything a crashed refresh left."""
    from reports.rollups import report_rollup_reconcile as reconcile

    today = timezone.now().date()
    for day in (today - timedelta(days=1), today):
        reconcile(day=day)


@shared_task(ignore_result=True)
def rules_evaluate():
    from reports.services import rules_evaluate as evaluate

    evaluate()
