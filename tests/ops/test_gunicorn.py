"""gunicorn with gunicorn.conf.py and two workers: /metrics adds up every worker's requests
(prometheus multiprocess mode), and the logs are JSON lines carrying the request id."""

import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.stack import stack_available, stack_env, web_server

pytestmark = pytest.mark.django_db(transaction=True)


def healthz_count(base_url: str) -> float:
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tracker_http_request_duration_seconds_count" and sample.labels == {
                "method": "GET", "route": "healthz", "status": "200",
            }:  # fmt: skip
                return sample.value
    return 0


def test_metrics_add_up_across_workers_and_logs_are_json(tmp_path):
    reason = stack_available()
    if reason:
        pytest.skip(reason)
    env = stack_env(LOG_FORMAT="json", ACCESS_LOG="1")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py makes a private one
    with web_server(env, tmp_path) as base_url:
        for number in range(20):
            answer = requests.get(f"{base_url}/healthz", headers={"X-Request-ID": f"gun-{number}"}, timeout=10)
            assert answer.status_code == 200 and answer.headers["X-Request-ID"] == f"gun-{number}"
        # Whichever worker answers the scrape, it reports all 20 (new connections spread over workers).
        assert {healthz_count(base_url) for _ in range(4)} == {20}

    lines = [json.loads(line) for line in (tmp_path / "gunicorn.log").read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "ops.access" and line["route"] == "healthz"]
    assert [line["request_id"] for line in access] == [f"gun-{number}" for number in range(20)]
    assert {line["status"] for line in access} == {200}
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in lines)
    pids = {line["message"].rsplit(" ", 1)[-1] for line in lines if "Booting worker" in line["message"]}
    assert len(pids) == 2
