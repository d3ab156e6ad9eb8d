"""The web workers' Redis client for short calls (rate-limit counters, waking a TikTok sender).

One client, with its connection pool, per process and URL; 0.5 s timeouts, so a Redis outage delays a
request by at most that. (The TikTok request limiter keeps its own client with longer timeouts.)
"""

from functools import lru_cache


@lru_cache(maxsize=4)
def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
