"""Django's PostgreSQL backend with a health check that costs a syscall instead of a round trip, and a
cursor kept for the hand-written statements (tracker.db.statements).

With CONN_HEALTH_CHECKS, Django runs `SELECT 1` before reusing a persistent connection in every request:
one more round trip and statement per click. An idle connection that the server closed (a restart, an
administrator's terminate, an idle timeout) has its socket readable: the server's goodbye or the end of the
stream is waiting. Only then is the full check run, so a dead connection is still never used.
Used as DATABASES ENGINE "tracker.db" (tracker/settings.py).
"""

import select

import psycopg
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    _statement_cursor: psycopg.Cursor | None = None

    def statement_cursor(self) -> psycopg.Cursor:
        """A psycopg cursor of the open connection (opened, and health-checked once a request, as for any
        query), kept as long as that connection: a new cursor for each statement cost ~20 µs of a click's
        CPU (its adapters are set up again each time)."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        cursor = self._statement_cursor
        if cursor is None or cursor.connection is not self.connection:
            cursor = self._statement_cursor = psycopg.Cursor(self.connection)
        return cursor

    def is_usable(self):
        if self.connection is None or self.connection.closed:
            return False
        try:
            readable, _, _ = select.select([self.connection.pgconn.socket], [], [], 0)
        except (OSError, ValueError):
            return False
        return super().is_usable() if readable else True
