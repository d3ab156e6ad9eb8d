"""Django's PostgreSQL backend with a health check that costs a syscall instead of a round trip.

With CONN_HEALTH_CHECKS, Django runs `SELECT 1` before reusing a persistent connection in every request:
one more round trip and statement per click. An idle connection that the server closed (a restart, an
administrator's terminate, an idle timeout) has its socket readable: the server's goodbye or the end of the
stream is waiting. Only then is the full check run, so a dead connection is still never used.
Used as DATABASES ENGINE "tracker.db" (tracker/settings.py).
"""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        if self.connection is None or self.connection.closed:
            return False
        try:
            readable, _, _ = select.select([self.connection.pgconn.socket], [], [], 0)
        except (OSError, ValueError):
            return False
        return super().is_usable() if readable else True
