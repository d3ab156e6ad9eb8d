import pytest

pytestmark = pytest.mark.django_db
RANGE = "date_from=2025-03-01&date_to=2025-03-04&tz=UTC"


def test_report_api_answers_the_table_of_the_admin(management_api, admin_client, ledger):
    api = management_api.get(f"/api/v1/reports/?group_by=campaign,day&{RANGE}&sort=-clicks")
    csv_text = admin_client.get(f"/admin/reports/?group_1=campaign&group_2=day&{RANGE}&sort=-clicks&format=csv")

    body = api.json()
    assert api.status_code == 200
    assert body["group_by"] == ["campaign", "day"] and body["tz"] == "UTC"
    assert [column["label"] for column in body["columns"]][:3] == ["Campaign", "Day", "Clicks"]
    assert body["total_rows"] == len(body["rows"]) == 8  # 2 campaigns × 4 days
    lines = csv_text.content.decode().strip().splitlines()
    assert len(lines) == 1 + 8 + 1 and lines[-1].split(",")[0] == "Total" == body["totals"][0]


def test_report_api_names_the_bad_field(management_api, ledger):
    bad_group = management_api.get("/api/v1/reports/?group_by=campaign,planet")
    bad_zone = management_api.get("/api/v1/reports/?tz=Mars/Olympus")

    assert bad_group.status_code == 400 and "planet" in bad_group.json()["fields"]["group_by"][0]
    assert bad_zone.status_code == 400 and list(bad_zone.json()["fields"]) == ["tz"]


def test_report_api_needs_a_management_key(client, bot_api, ledger):
    assert client.get("/api/v1/reports/").status_code == 401
    assert bot_api.get("/api/v1/reports/").status_code == 403
