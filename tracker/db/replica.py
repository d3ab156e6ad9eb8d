"""Reports on a read replica: REPORTS_DATABASE_URL adds the `reports` database, and the staff's report
pages and the report API read from it, so their scans of rollups and clicks do not compete with the
click INSERTs on the primary.

Only what runs inside `report_reads()` reads there (the router asks a context variable, not the model):
the click path, the intake, the rollups, the outbox and the admin's edit pages read the same models and
must see their own writes at once, so they stay on the primary. Writes always go to the primary, also
inside `report_reads()`. A replica applies the primary's changes a moment later; the report pages show
how far the rollup had got ("rolled up until"), read from the same replica.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.db import DEFAULT_DB_ALIAS

REPORTS_ALIAS = "reports"
_reading_reports: ContextVar[bool] = ContextVar("reading_reports", default=False)


@contextmanager
def report_reads():
    """The ORM's reads inside this block go to the reports replica, if one is configured. Also a view
    decorator, `@report_reads()` (contextmanager's own ContextDecorator)."""
    token = _reading_reports.set(True)
    try:
        yield
    finally:
        _reading_reports.reset(token)


class ReportsReplicaRouter:
    """Installed when REPORTS_DATABASE_URL is set (tracker/settings.py)."""

    def db_for_read(self, model, **hints):
        return REPORTS_ALIAS if _reading_reports.get() else None

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # The replica holds the primary's rows: an object read from one may point at an object of the other.
        both = {obj1._state.db, obj2._state.db}
        return True if both <= {DEFAULT_DB_ALIAS, REPORTS_ALIAS} else None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # A replica takes its schema from the primary's WAL; `migrate --database reports` does nothing.
        return False if db == REPORTS_ALIAS else None
