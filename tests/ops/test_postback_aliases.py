"""POSTBACK_PARAM_ALIASES: any network's parameter names map onto ours without code."""

import subprocess
import sys

import pytest

from conversions.models import Click, Conversion
from conversions.serializers import POSTBACK_ALIASES, postback_aliases, postback_params
from ops.envparse import parse_aliases
from tests.stack import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def click(visit, link) -> Click:
    visit("/l/tiktok_abc123")
    return Click.objects.get()


def test_built_in_aliases_still_work(client, click, intake_key, settings):
    settings.POSTBACK_PARAM_ALIASES = {"click_id": ("clickref",)}
    response = client.get("/postback", {"key": intake_key, "cid": click.click_id, "sum": "7.50", "status": "sale"})
    assert response.status_code == 201 and response.json()["amount"] == 750


def test_configured_names_map_onto_ours(client, click, intake_key, settings):
    settings.POSTBACK_PARAM_ALIASES = {"click_id": ("clickref", "s2"), "payout": ("commission",)}
    response = client.get(
        "/postback", {"key": intake_key, "s2": click.click_id, "commission": "3.20", "status": "confirmed"}
    )
    assert response.status_code == 201
    assert {key: response.json()[key] for key in ("click_id", "amount", "status")} == {
        "click_id": click.click_id, "amount": 320, "status": "approved",
    }  # fmt: skip
    assert Conversion.objects.get().params["commission"] == "3.20"


def test_configured_names_win_over_built_in_ones(client, click, intake_key, settings):
    # This network sends its own revenue as `amount` and our payout as `commission`.
    settings.POSTBACK_PARAM_ALIASES = {"payout": ("commission",), "goal": ("sub1",)}
    query = {"key": intake_key, "clickid": click.click_id, "amount": "99.00", "commission": "4.00", "sub1": "deposit"}
    body = client.get("/postback", query).json()
    assert (body["amount"], body["goal"]) == (400, "deposit")


def test_post_form_uses_the_aliases_too(client, click, intake_key, settings):
    settings.POSTBACK_PARAM_ALIASES = {"click_id": ("clickref",), "transaction_id": ("conversion_ref",)}
    form = {"clickref": click.click_id, "payout": "1.00", "conversion_ref": "net-77"}
    first = client.post(f"/postback?key={intake_key}", form)
    repeat = client.post(f"/postback?key={intake_key}", form)
    assert (first.status_code, repeat.status_code, repeat.json()["outcome"]) == (201, 200, "unchanged")


def test_merge_rules(settings):
    settings.POSTBACK_PARAM_ALIASES = {"goal": ("sub1",), "click_id": ("clickref", "cid")}
    aliases = postback_aliases()
    assert aliases["click_id"][:3] == ("clickref", "cid", "click_id")
    assert aliases["sub1"] == () and aliases["goal"][0] == "sub1"
    assert postback_params({"sub1": "deposit", "clickref": "abc"}) == {"goal": "deposit", "click_id": "abc"}
    settings.POSTBACK_PARAM_ALIASES = {}
    assert postback_aliases() == POSTBACK_ALIASES


def test_parse_aliases():
    assert parse_aliases("") == {}
    assert parse_aliases("click_id:clickref|s2, payout:commission,click_id:aff_click_id") == {
        "click_id": ("clickref", "s2", "aff_click_id"),
        "payout": ("commission",),
    }
    for bad in ("click_id", "click_id:", "click_id:a b", ":x", "payout:sum;drop"):
        with pytest.raises(ValueError):
            parse_aliases(bad)


@pytest.mark.parametrize(
    ("value", "returncode", "says"),
    [
        ("click_id:clickref|s2,payout:commission", 0, "System check identified"),
        ("clik_id:clickref", 1, "ops.E001"),
        ("click_id", 1, "POSTBACK_PARAM_ALIASES"),
    ],
)
def test_the_setting_is_checked_at_boot(value, returncode, says, tmp_path):
    env = {"DEBUG": "1", "VAR_DIR": str(tmp_path), "POSTBACK_PARAM_ALIASES": value, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == returncode and says in output
    assert ("ops.E001" in output) == (says == "ops.E001")
