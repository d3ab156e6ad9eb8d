"""A real browser (Debian's chromium, headless) logs in, opens the report and the dashboard, sees the
charts drawn, and downloads the CSV, which must equal the table shown.

Installs nothing: without /usr/bin/chromium (apt-get install chromium) the test is skipped.
"""

import csv
import io
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from tests.reports.conftest import generate, settle_and_roll_up

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
RANGE = "date_from=2025-03-01&date_to=2025-03-04&tz=Europe/Kyiv"
# Drawn pixels of a canvas: a blank one has none.
PAINTED = """(id) => {
  const canvas = document.getElementById(id);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++;
  return painted;
}"""
TABLE = """() => Array.from(document.querySelectorAll("#report-table tbody tr, #report-table tfoot tr"))
  .map(tr => Array.from(tr.querySelectorAll("td")).map(td => td.textContent.trim()))"""

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]


@contextmanager
def chromium():
    """Playwright on Debian's chromium (never a downloaded browser)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def test_report_and_dashboard_in_a_real_browser(live_server, tmp_path, monkeypatch):
    # The live server's request threads must not keep their connections (the test database is dropped at
    # the end of the session, and persistent connections would hold it).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    generate(clicks=600, start=datetime(2025, 3, 1, tzinfo=UTC), hours=72)
    settle_and_roll_up()
    get_user_model().objects.create_superuser("marketer", "m@example.com", "a-long-pass-phrase")
    # Playwright's sync API runs its own event loop and context from here on: no more ORM in this test.
    with chromium() as browser:
        browse(browser, live_server.url, tmp_path)


def browse(browser, base_url: str, tmp_path: Path) -> None:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "marketer")
    page.fill("#id_password", "a-long-pass-phrase")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")
    page.click("#reports-module a:text('Report')")
    page.wait_for_url("**/admin/reports/")

    page.goto(f"{base_url}/admin/reports/?{RANGE}&group_1=campaign&group_2=day&sort=-clicks")
    page.wait_for_selector("#report-chart[data-rendered='1']")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert page.evaluate(PAINTED, "report-chart") > 1_000
    shown = page.evaluate(TABLE)
    assert len(shown) > 2 and shown[-1][0] == "Total"
    headers = page.eval_on_selector_all("#report-table thead th", "ths => ths.map(th => th.textContent.trim())")

    with page.expect_download() as download_info:
        page.click("#report-csv")
    download = download_info.value
    exported = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert download.suggested_filename == "report-2025-03-01-2025-03-04.csv"
    assert exported[0] == [header.rstrip(" ▲▼") for header in headers]
    assert exported[1:] == shown

    page.goto(f"{base_url}/admin/reports/dashboard/?{RANGE}")
    for chart in ("chart-series", "chart-funnel", "chart-ttc", "chart-creatives"):
        page.wait_for_selector(f"#{chart}[data-rendered='1']")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    for chart in ("chart-series", "chart-funnel", "chart-ttc", "chart-creatives"):
        assert page.evaluate(PAINTED, chart) > 1_000, chart
    context.close()
