"""A per-process cache of rows read on every request, each kept for a few seconds.

Used where a row is read far more often than it changes (a tracking link on every click, an API key on
every conversion): a change is seen within the TTL, at once by the worker that makes it when it forgets.
"""

import time

MAX_ENTRIES = 20_000


def cached(cache: dict, key, load, *, ttl_s: float):
    """load()'s value for key, from `cache` while younger than ttl_s (0: always load)."""
    if ttl_s <= 0:
        return load()
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    if len(cache) >= MAX_ENTRIES:
        cache.clear()  # unknown keys from a scanner must not grow the cache without bound
    value = load()
    cache[key] = (now + ttl_s, value)
    return value
