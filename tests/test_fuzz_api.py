"""Property-based fuzzing of every API operation from the app's own OpenAPI schema (schemathesis).

Fixed seed (derandomized Hypothesis) and a bounded number of examples per operation. What must hold
for any input: never a 5xx, and every 4xx is our JSON error body naming the problem.
"""

import hypothesis
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck
from rest_framework.utils.encoders import JSONEncoder

from conversions.auth import api_key_create


def _openapi() -> dict:
    import json

    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=JSONEncoder))


schema = schemathesis.openapi.from_dict(_openapi())

FUZZ_SETTINGS = hypothesis.settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def json_error_body(response, case) -> None:
    """Our own check: 4xx answers are {"error", "message", "fields"} JSON."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert set(body) >= {"error", "message", "fields"}, body
        assert body["message"] or body["fields"], (body, case.as_curl_command())


@pytest.fixture
def management_header(db):
    return {"Authorization": f"Api-Key {api_key_create(name='fuzz', scope='management')[1]}"}


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@FUZZ_SETTINGS
def test_no_input_breaks_the_api(case, management_header, live_server):
    response = case.call(base_url=live_server.url, headers=management_header)

    assert response.status_code < 500, case.as_curl_command()
    json_error_body(response, case)
