"""Reports on a read replica (REPORTS_DATABASE_URL): the report pages and the report API read the `reports`
database; logins, permissions, API keys and every write stay on the primary.

The replica here is the test database through a second connection whose transactions are read-only, so it
refuses a write as a streaming replica does."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from django.db import InternalError, connection, connections, router
from django.test.utils import CaptureQueriesContext

from conversions.models import Campaign
from reports.forms import ReportForm
from reports.selectors import report_rows, report_table
from tests.factories import CampaignFactory
from tests.reports.conftest import generate, settle_and_roll_up
from tracker.db.replica import REPORTS_ALIAS, report_reads

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", REPORTS_ALIAS])
RANGE = {"date_from": "2025-03-01", "date_to": "2025-03-04", "tz": "UTC"}


@pytest.fixture(scope="module", autouse=True)
def reports_database(django_db_setup):
    """The `reports` alias, before each test's database access is set up (which checks its aliases)."""
    primary = connections["default"].settings_dict  # the test database, once django_db_setup made it
    options = {**primary["OPTIONS"], "options": "-c default_transaction_read_only=on"}
    connections.settings[REPORTS_ALIAS] = {
        **primary,
        "OPTIONS": options,
        "TEST": {**primary["TEST"], "MIRROR": "default"},
    }
    yield
    del connections.settings[REPORTS_ALIAS]


@pytest.fixture
def replica(settings):
    if connection.vendor != "postgresql":
        pytest.skip("the read-only connection is a PostgreSQL option")
    settings.DATABASE_ROUTERS = ["tracker.db.replica.ReportsReplicaRouter"]
    yield connections[REPORTS_ALIAS]
    connections[REPORTS_ALIAS].close()
    del connections[REPORTS_ALIAS]


def _report_tables(queries) -> list[str]:
    return [query["sql"] for query in queries if '"reports_' in query["sql"] or '"conversions_click"' in query["sql"]]


def test_report_page_and_api_read_the_replica(replica, admin_client, management_api):
    generate(clicks=400, start=datetime(2025, 3, 1, tzinfo=UTC), hours=72)
    settle_and_roll_up()
    form = ReportForm({**RANGE, "group_1": "campaign", "group_2": "day"})
    assert form.is_valid()
    on_primary_table = report_table(report_rows(form.query()))  # read before the replica is asked

    with CaptureQueriesContext(replica) as on_replica, CaptureQueriesContext(connections["default"]) as on_primary:
        page = admin_client.get("/admin/reports/", {**RANGE, "group_1": "campaign", "group_2": "day"})
        dashboard = admin_client.get("/admin/reports/dashboard/", RANGE)
        api = management_api.get("/api/v1/reports/", {**RANGE, "group_by": "campaign,day"})

    assert page.status_code == dashboard.status_code == api.status_code == 200
    assert api.json()["rows"] == on_primary_table.rows and api.json()["totals"] == on_primary_table.totals
    assert on_primary_table.totals[0] == "Total" and int(on_primary_table.totals[2]) > 0
    assert _report_tables(on_replica.captured_queries)
    assert _report_tables(on_primary.captured_queries) == []
    # The login's session and user, the permission check and the API key were read on the primary.
    primary_sql = " ".join(query["sql"] for query in on_primary.captured_queries)
    assert '"django_session"' in primary_sql and '"auth_user"' in primary_sql and '"conversions_apikey"' in primary_sql
    assert Campaign.objects.all().db == "default"  # nothing left switched on after the requests


def test_a_journey_reads_the_replica(replica, admin_client):
    ledger = generate(clicks=50, start=datetime(2025, 3, 1, tzinfo=UTC), hours=2)
    click = ledger.clicks[0]

    with CaptureQueriesContext(replica) as on_replica:
        page = admin_client.get(f"/admin/reports/journey/click/{click.click_id}/")

    assert page.status_code == 200 and click.click_id in page.content.decode()
    assert any(click.click_id in query["sql"] or '"conversions_click"' in query["sql"] for query in on_replica)


def test_writes_inside_report_reads_go_to_the_primary(replica):
    with report_reads():
        campaign = CampaignFactory(name="Written on the primary")
        reads_from = Campaign.objects.all().db
        found = Campaign.objects.get(pk=campaign.pk)

    assert reads_from == REPORTS_ALIAS and found.name == "Written on the primary"
    assert Campaign.objects.all().db == "default"
    with pytest.raises(InternalError, match="read-only transaction"):
        Campaign.objects.using(REPORTS_ALIAS).filter(pk=campaign.pk).update(name="on the replica")


def test_the_replica_is_never_migrated(replica):
    assert router.allow_migrate(REPORTS_ALIAS, "conversions", model_name="click") is False
    assert router.allow_migrate("default", "conversions", model_name="click") is True


def test_reports_database_url_adds_the_replica_and_its_router():
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps({'reports': settings.DATABASES.get('reports'), 'routers': settings.DATABASE_ROUTERS},"
        " default=str))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tracker.settings",
           "REPORTS_DATABASE_URL": "postgres://reader@replica.internal:5432/tracker"}  # fmt: skip
    without = {key: value for key, value in env.items() if key != "REPORTS_DATABASE_URL"}

    configured = json.loads(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                           check=True, cwd=django_settings.BASE_DIR).stdout)  # fmt: skip
    plain = json.loads(subprocess.run([sys.executable, "-c", script], env=without, capture_output=True, text=True,
                                      check=True, cwd=django_settings.BASE_DIR).stdout)  # fmt: skip

    reports = configured["reports"]
    assert (reports["ENGINE"], reports["HOST"], reports["USER"], reports["NAME"]) == (
        "tracker.db", "replica.internal", "reader", "tracker")  # fmt: skip
    assert reports["TEST"]["MIRROR"] == "default" and reports["CONN_MAX_AGE"] == 60
    assert configured["routers"] == ["tracker.db.replica.ReportsReplicaRouter"]
    assert plain == {"reports": None, "routers": []}
