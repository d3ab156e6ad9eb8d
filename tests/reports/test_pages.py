"""The staff pages: report (and its CSV), dashboard, journeys, the index links, the spend import."""

import csv
import io
import re

import pytest

from conversions.models import Conversion, Lead
from reports.models import CostEntry

pytestmark = pytest.mark.django_db
RANGE = {"date_from": "2025-03-01", "date_to": "2025-03-04", "tz": "UTC"}


def table_cells(html: str) -> list[list[str]]:
    body = html[html.index('id="report-table"') :]
    body = body[: body.index("</table>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)[1:]  # without the header
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in rows]  # fmt: skip


def test_admin_index_links_the_reports(admin_client):
    html = admin_client.get("/admin/").content.decode()

    assert 'href="/admin/reports/"' in html and 'href="/admin/reports/dashboard/"' in html
    assert "Tracking links" in html or "tracking links" in html  # the app list is still there


def test_report_page_and_its_csv_show_the_same_table(admin_client, ledger):
    params = {**RANGE, "group_1": "campaign", "group_2": "day", "sort": "-revenue_minor"}

    page = admin_client.get("/admin/reports/", params)
    download = admin_client.get("/admin/reports/", {**params, "format": "csv"})

    assert page.status_code == 200 and download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="report-2025-03-01-2025-03-04.csv"'
    shown = table_cells(page.content.decode())
    exported = list(csv.reader(io.StringIO(download.content.decode())))
    assert exported[1:] == shown
    assert exported[0][:4] == ["Campaign", "Day", "Clicks", "Unique clicks"]
    assert shown[-1][0] == "Total"
    revenues = [float(row[exported[0].index("Revenue")]) for row in shown[:-1]]
    assert revenues == sorted(revenues, reverse=True)
    assert {row[0] for row in shown[:-1]} == {"Football", "Casino"}


def test_report_rejects_a_bad_time_zone_and_reversed_range(admin_client, ledger):
    bad_zone = admin_client.get("/admin/reports/", {**RANGE, "tz": "Mars/Olympus"})
    reversed_range = admin_client.get("/admin/reports/", {**RANGE, "date_from": "2025-03-05"})

    assert "Unknown time zone" in bad_zone.content.decode()
    assert "ends before it starts" in reversed_range.content.decode()


def test_report_pages_are_for_staff_only(client, ledger):
    response = client.get("/admin/reports/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_dashboard_embeds_the_chart_data(admin_client, ledger):
    html = admin_client.get("/admin/reports/dashboard/", RANGE).content.decode()

    assert 'id="dashboard-data"' in html and "chart.umd.js" in html
    assert "Landing views" in html and "Top creatives" in html
    assert "cdn" not in html.lower()


def test_journey_timeline_of_a_conversion_and_a_lead(admin_client, ledger):
    conversion = Conversion.objects.filter(click__isnull=False, lead__isnull=False).first()
    lead = conversion.lead

    changelist = admin_client.get("/admin/conversions/conversion/").content.decode()
    page = admin_client.get(f"/admin/reports/journey/conversion/{conversion.public_id}/").content.decode()
    lead_page = admin_client.get(f"/admin/reports/journey/lead/{lead.pk}/").content.decode()

    assert f'href="/admin/reports/journey/conversion/{conversion.public_id}/"' in changelist
    assert (
        f'href="/admin/reports/journey/lead/{lead.pk}/"'
        in admin_client.get("/admin/conversions/lead/").content.decode()
    )
    for html in (page, lead_page):
        kinds = re.findall(r'class="journey-step journey-(\w+)', html)
        assert kinds[0] == "click" and "start" in kinds and "conversion" in kinds
        assert conversion.click.click_id in html or f"/admin/conversions/click/{conversion.click.pk}/" in html
    assert "journey-highlight" in page
    assert admin_client.get("/admin/reports/journey/conversion/nope/").status_code == 404


def test_journey_of_a_conversion_without_a_click(admin_client, ledger):
    conversion = Conversion.objects.get(click__isnull=True)

    html = admin_client.get(f"/admin/reports/journey/conversion/{conversion.public_id}/").content.decode()

    assert "No click is known" in html and "7.77 USD" in html


def test_daily_spend_csv_import_all_or_nothing(admin_client, ledger):
    good = "day,campaign,utm_id,spend,currency\n2025-03-01,Football,bio_link,120.50,USD\n2025-03-02,Casino,,80,\n"
    bad = "day,campaign,spend\n2025-03-01,Football,10\n2025-13-01,Nope,x\n"

    rejected = admin_client.post("/admin/reports/costentry/import/", {"file": io.BytesIO(bad.encode())})
    assert "Line 3" in rejected.content.decode() and CostEntry.objects.count() == 0

    admin_client.post("/admin/reports/costentry/import/", {"file": _named(good)})
    admin_client.post("/admin/reports/costentry/import/", {"file": _named(good)})  # again: replaces, no duplicate

    entries = {(entry.link.utm_id if entry.link else None, str(entry.day)): entry.amount_minor
               for entry in CostEntry.objects.all()}  # fmt: skip
    assert entries == {("bio_link", "2025-03-01"): 12050, (None, "2025-03-02"): 8000}


def _named(text: str):
    upload = io.BytesIO(text.encode())
    upload.name = "spend.csv"
    return upload


@pytest.mark.parametrize("path", ["costentry", "costperclick", "rule", "rulefiring", "sourcelist"])
def test_every_reports_admin_list_opens(admin_client, path):
    assert admin_client.get(f"/admin/reports/{path}/").status_code == 200


def test_lead_without_click_has_a_journey(admin_client, link):
    lead = Lead.objects.create(telegram_user_id=5, link=link, campaign=link.campaign, username="solo")

    assert admin_client.get(f"/admin/reports/journey/lead/{lead.pk}/").status_code == 200


def test_staff_without_the_view_permissions_get_403(client, ledger):
    from django.contrib.auth import get_user_model

    conversion = Conversion.objects.first()
    staff = get_user_model().objects.create_user("intern", password="x", is_staff=True)
    client.force_login(staff)

    assert client.get("/admin/reports/").status_code == 403
    assert client.get("/admin/reports/dashboard/").status_code == 403
    assert client.get(f"/admin/reports/journey/conversion/{conversion.public_id}/").status_code == 403


def test_report_of_one_link_by_its_utm_id(admin_client, ledger):
    page = admin_client.get("/admin/reports/", {**RANGE, "group_1": "link", "link": "casino_link"})
    unknown = admin_client.get("/admin/reports/", {**RANGE, "link": "nope"})

    rows = table_cells(page.content.decode())
    assert [row[0] for row in rows] == ["casino_link", "Total"]
    assert "No tracking link" in unknown.content.decode()
