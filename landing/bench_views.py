"""A bare redirect for bench/clicks.py: the same 302 and headers as a tracking link, without tracking.

Mounted at /bench/redirect only when BENCH_ENDPOINTS is on. The click path's throughput is measured
against it in the same run, so the ratio shows what tracking costs on top of Django itself.
"""

from django.http import HttpResponseRedirect
from django.views.decorators.http import require_safe

from landing.views import _no_store


@require_safe
def bare_redirect(request):
    return _no_store(HttpResponseRedirect("https://t.me/demo_tracker_bot?start=x"))
