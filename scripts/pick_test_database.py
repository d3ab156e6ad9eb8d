"""Print the database URL the tests should use: the given PostgreSQL when it answers, else SQLite."""

import socket
import sys
from urllib.parse import urlparse


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=2):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    wanted = sys.argv[1]
    print(wanted if reachable(wanted) else "sqlite:///var/test.sqlite3")
