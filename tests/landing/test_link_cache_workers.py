"""A pause reaches every gunicorn worker's link cache: the trigger raises the click settings' version in
the database, and each worker, having cached the link, sees the new number and reads the link again."""

import pytest
import requests

from conversions.models import Click, TrafficSource
from tests.factories import TrafficSourceFactory
from tests.stack import stack_available, stack_env, wait_until, web_server

pytestmark = pytest.mark.django_db(transaction=True)


def answers(url: str, count: int) -> set[int]:
    # A new connection each time: gunicorn's two workers both take some of them.
    return {requests.get(url, allow_redirects=False, timeout=10).status_code for _ in range(count)}


def test_a_pause_and_a_resume_reach_every_worker(tmp_path):
    reason = stack_available()
    if reason:
        pytest.skip(reason)
    link = TrafficSourceFactory(utm_id="tiktok_workers", redirect_mode=TrafficSource.RedirectMode.DIRECT)
    env = stack_env(LINK_CACHE_TTL_S="0.5", LINK_CACHE_MAX_AGE_S="300", ALLOWED_HOSTS="127.0.0.1")
    with web_server(env, tmp_path) as base_url:
        url = f"{base_url}/l/tiktok_workers"
        assert answers(url, 20) == {302}  # both workers have cached the link

        TrafficSource.objects.filter(pk=link.pk).update(is_active=False)
        wait_until(lambda: answers(url, 20) == {404}, timeout=20, what="every worker to see the pause")

        TrafficSource.objects.filter(pk=link.pk).update(is_active=True)
        wait_until(lambda: answers(url, 20) == {302}, timeout=20, what="every worker to see the resume")

    assert Click.objects.filter(link=link).count() >= 40
