"""The console's referral pages over HTTP (TestClient, authentication on): the overdue
worklist and the overview's tile, the 台账 with its filters and its exports, the
quarterly analysis's numbers against ``GET /referrals/analysis``, and the facility limits
(a township sees the referrals it sent or received, naming another facility is refused).
The browser journeys (export and open the XLSX, read a chart): test_console_browser.py."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.referral.scheduler import run_once
from adapter.settings import PROJECT_ROOT
from tests.api.auth_helpers import Tokens, auth_client
from tests.console.helpers import login
from tests.integration.referral_support import status_ops

UP_SLIP = PROJECT_ROOT / "fixtures/xml/referral/shiqiao-his/up-slip.xml"  # 石桥 -> 县医院
DOWN_SLIP = PROJECT_ROOT / "fixtures/hl7v2/referral/std-hl7v2/down-slip-15-digit-id.hl7"
PERIOD = {"from": "2026-01-01", "to": "2026-12-31"}


@pytest.fixture(scope="module")
def site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FastAPI, Tokens, str]]:
    """Two referrals, the up one accepted by the county hospital (the last test runs the
    deadline scheduler)."""
    folder = tmp_path_factory.mktemp("console-referrals")
    with auth_client(module_database_url, folder) as (app, tokens):
        up = _ingest(tokens, "shiqiao-source", "shiqiao-his", UP_SLIP, "application/xml")
        _ingest(tokens, "county-source", "std-hl7v2", DOWN_SLIP, "application/hl7-v2")
        for status in ("received", "accepted"):
            answer = tokens.client.patch(
                f"/fhir/{up}",
                json=status_ops(status),
                headers=tokens.headers(
                    "county-reader", **{"Content-Type": "application/json-patch+json"}
                ),
            )
            assert answer.status_code == 200, answer.text
        yield app, tokens, up.split("/", 1)[1]


def _ingest(tokens: Tokens, client_id: str, source: str, path: Path, media: str) -> str:
    answer = tokens.client.post(
        "/ingest",
        content=path.read_bytes(),
        headers=tokens.headers(client_id, **{"X-Source-System": source, "Content-Type": media}),
    )
    assert answer.status_code == 202, answer.text
    return next(r for r in answer.json()["resources"] if r.startswith("Task/"))


def _browser(app: FastAPI, client_id: str) -> TestClient:
    browser = TestClient(app, base_url="http://console.test")
    assert login(browser, client_id).status_code == 303
    return browser


def _tasks(html: str, table: str) -> list[str]:
    part = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr data-task="([^"]+)"', part)


def test_the_ledger_is_filtered_and_limited_to_the_facility(
    site: tuple[FastAPI, Tokens, str],
) -> None:
    app, _, up = site
    county = _browser(app, "county-reader").get("/console/referrals/ledger").text
    assert len(_tasks(county, "ledger-table")) == 2
    assert "430999" not in county  # the patient is masked (no ID column, names masked)
    only_up = _browser(app, "county-reader").get(
        "/console/referrals/ledger", params={"direction": "up", "status": "", "q": ""}
    )
    assert _tasks(only_up.text, "ledger-table") == [up]
    # the export links carry the filters the page shows
    assert "format=xlsx&amp;direction=up" in only_up.text
    township = _browser(app, "shiqiao-operator")
    assert _tasks(township.get("/console/referrals/ledger").text, "ledger-table") == [up]
    assert 'id="l-facility"' not in township.get("/console/referrals/ledger").text
    other = township.get(
        "/console/referrals/ledger", params={"facility": "qingshan-county-hospital"}
    )
    assert other.status_code == 403 and "无权访问" in other.text
    refused = township.get(
        "/console/referrals/ledger/export",
        params={"format": "xlsx", "facility": "liuhe-township-centre"},
    )
    assert refused.status_code == 403
    wrong = township.get("/console/referrals/ledger", params={"week": "2026-12-03"})
    assert wrong.status_code == 200 and 'id="ledger-error"' in wrong.text  # not a Friday


def test_a_referral_s_page_has_its_copies_and_timeline(
    site: tuple[FastAPI, Tokens, str],
) -> None:
    app, _, up = site
    page = _browser(app, "shiqiao-reader").get(f"/console/referrals/{up}").text
    copies = page.split('id="copies"', 1)[1].split("</table>", 1)[0]
    assert "<td>转诊单</td>" in copies and "上转 SQ-ZZ-2026-0201" in copies
    assert copies.count("<code>DocumentReference/") == 1
    timeline = page.split('id="timeline"', 1)[1].split("</table>", 1)[0]
    assert [v for v in re.findall(r"<tr><td>(\d+)</td>", timeline)] == [
        "1",
        "2",
        "3",
    ]  # oldest first
    assert "accepted" in timeline and "received" in timeline and "requested" in timeline


def test_the_exports_are_the_api_s(site: tuple[FastAPI, Tokens, str]) -> None:
    app, tokens, up = site
    township = _browser(app, "shiqiao-operator")
    sheet = township.get("/console/referrals/ledger/export", params={"format": "xlsx"})
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert sheet.headers["content-security-policy"].startswith("default-src 'self'")
    rows = list(openpyxl.load_workbook(io.BytesIO(sheet.content)).active.values)
    assert rows[0][0] == "转诊单号" and len(rows) == 2
    assert rows[1][-1] == f"Task/{up}"
    api = tokens.client.get(
        "/referrals/ledger", params={"format": "xlsx"}, headers=tokens.headers("shiqiao-operator")
    )
    assert list(openpyxl.load_workbook(io.BytesIO(api.content)).active.values) == rows
    table = township.get("/console/referrals/ledger/export", params={"format": "csv"})
    lines = list(csv.reader(io.StringIO(table.content.decode("utf-8-sig"))))
    assert lines[0][0] == "转诊单号" and [line[-1] for line in lines[1:]] == [f"Task/{up}"]
    bad = township.get("/console/referrals/ledger/export", params={"format": "exe"})
    assert bad.status_code == 400


def _option(html: str, chart: str) -> dict:
    found = re.search(rf'id="{chart}-option">(.*?)</script>', html, re.S)
    assert found is not None, chart
    return json.loads(found.group(1))


def test_the_analysis_shows_the_api_s_numbers(site: tuple[FastAPI, Tokens, str]) -> None:
    app, tokens, _ = site
    page = _browser(app, "county-reader").get("/console/referrals/analysis", params=PERIOD)
    assert page.status_code == 200
    api = tokens.client.get(
        "/referrals/analysis", params=PERIOD, headers=tokens.headers("county-reader")
    ).json()
    assert api["counts"] == {"up": 1, "down": 1, "same": 0} and api["down_ratio"] == 1.0
    html = page.text
    flows = _option(html, "chart-flows")
    assert flows["series"][0]["data"] == [p["count"] for p in api["pairs"]]
    assert len(flows["yAxis"]["data"]) == len(api["pairs"]) == 2
    months = _option(html, "chart-down-ratio")
    by_month = api["down_ratio_trend"]["by_month"]
    assert months["xAxis"]["data"] == [m["month"] for m in by_month]
    assert months["series"][2]["data"] == [m["down_ratio"] for m in by_month]
    loop = _option(html, "chart-loop")
    assert loop["series"][0]["data"][0] == round(api["acceptance_rate"] * 100, 1)
    assert loop["series"][0]["data"][3] is None  # nobody discharged: no follow-up figure
    accept = _option(html, "chart-accept")
    assert sum(accept["series"][0]["data"]) == 1  # the one accepted referral
    assert f"中位数 {api['median_minutes_to_accept']} 分钟" in html
    diagnoses = _option(html, "chart-diagnoses")
    drawn = sum(sum(s["data"]) for s in diagnoses["series"])
    assert drawn == sum(c["count"] for d in api["diagnoses"].values() for c in d["codes"])
    # the township's analysis: its own referral only
    township = _browser(app, "shiqiao-reader").get("/console/referrals/analysis", params=PERIOD)
    assert _option(township.text, "chart-flows")["series"][0]["data"] == [1]
    # a quarter by default (this one), a bad period is said
    assert _browser(app, "county-reader").get("/console/referrals/analysis").status_code == 200
    bad = _browser(app, "county-reader").get(
        "/console/referrals/analysis", params={"year": "2026", "quarter": "5"}
    )
    assert bad.status_code == 400 and 'id="analysis-error"' in bad.text


def test_overdue_referrals_on_the_worklist_and_the_overview(
    site: tuple[FastAPI, Tokens, str],
) -> None:
    app, _, up = site
    county = _browser(app, "county-operator")
    assert county.get("/console/overview.json").json()["overdue"] == 0
    later = datetime.now(UTC) + timedelta(days=400)
    run_once(app.state.session_factory, app.state.consortium, now=later)
    overview = county.get("/console/overview")
    assert re.search(r'id="tile-overdue">([1-9]\d*)<', overview.text)
    assert 'href="/console/referrals?show=overdue"' in overview.text
    figures = county.get("/console/overview.json").json()
    worklist = county.get("/console/referrals", params={"show": "overdue"}).text
    listed = _tasks(worklist, "overdue-list")
    assert len(listed) == figures["overdue"] and up in listed
    assert set(_tasks(worklist, "referral-list")) <= set(listed)
    # the reader of the county sees its worklist; the admin's overview has no link to it
    admin = _browser(app, "county-admin").get("/console/overview").text
    assert 'id="tile-overdue"' in admin and "show=overdue" not in admin
