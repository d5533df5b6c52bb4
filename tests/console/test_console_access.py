"""The console's access rules, over HTTP (TestClient) with authentication on: every console
route by role (from the rule table, like tests/api/test_auth_matrix.py), the session
cookie's flags, CSRF on every POST, the secure headers, facility scoping and masking."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from adapter.auth.rules import ROLES, RULES
from adapter.console.i18n import catalogue
from adapter.console.setup import CONSOLE_ROUTERS
from adapter.settings import PROJECT_ROOT
from adapter.store import outbox
from adapter.store.audit_log import AuditRecord
from adapter.store.identity_tables import IdentityRecord
from adapter.store.models import DeliveryDestination
from tests.api.auth_helpers import Tokens, auth_client
from tests.console.helpers import csrf_of, login

ORU = PROJECT_ROOT / "fixtures/hl7v2/oru"
BAD = PROJECT_ROOT / "fixtures/hl7v2/bad"
NATIONAL_ID = "430999196803151231"  # in fixtures/hl7v2/bad/obx14-bad-date.hl7 (fictitious)
BY_ROLE = {role: f"county-{role}" for role in ROLES}
CONSORTIUM = {"operator": "consortium-operator", "admin": "consortium-admin"}
FILL = {
    "message_id": "00000000-0000-4000-8000-000000000000",
    "delivery_id": "999999",
    "destination": "county-hospital-fhir",
    "item_id": "999999",
    "person_id": "p-none",
    "merge_id": "999999",
    "task_id": "t-none",
}


def _session_routes() -> list[tuple[str, str, str]]:
    found = []
    for router in CONSOLE_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            if RULES[route.name].session:
                found += [(route.name, m, route.path) for m in sorted(route.methods)]
    return found


ROUTES = _session_routes()


@pytest.fixture(scope="module")
def console(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    """The app with a quarantined message of each of two facilities."""
    folder = tmp_path_factory.mktemp("console")
    with auth_client(module_database_url, folder, deliveries=True) as (app, tokens):
        ids = {
            "county": _ingest(tokens, "county-source", "std-hl7v2", BAD / "obx14-bad-date.hl7"),
            "shiqiao": _ingest(
                tokens,
                "shiqiao-source",
                "shiqiao-lis",
                ORU / "shiqiao-lis/biochem-lf.hl7",
            ),
            "county-result": _ingest(
                tokens, "county-source", "std-hl7v2", ORU / "std-hl7v2/cbc-basic.hl7"
            ),
        }
        yield app, ids


def _ingest(tokens: Tokens, client_id: str, source: str, path: Path) -> str:
    answer = tokens.client.post(
        "/ingest",
        content=path.read_bytes(),
        headers=tokens.headers(
            client_id, **{"X-Source-System": source, "Content-Type": "application/hl7-v2"}
        ),
    )
    assert answer.status_code in (202, 422), answer.text
    return answer.headers["X-Message-Id"]


def _browser(app: FastAPI, client_id: str | None = None) -> TestClient:
    browser = TestClient(app, base_url="http://console.test")
    if client_id is not None:
        answer = login(browser, client_id)
        assert answer.status_code == 303, answer.text
    return browser


def _url(path: str) -> str:
    return path.format(**{k: v for k, v in FILL.items() if "{" + k + "}" in path})


def test_every_console_route_has_a_session_rule() -> None:
    names = {route.name for router in CONSOLE_ROUTERS for route in router.routes}
    assert names <= set(RULES)
    assert {n for n, rule in RULES.items() if rule.session} <= names


@pytest.mark.parametrize(("name", "method", "path"), ROUTES, ids=[f"{m} {p}" for _, m, p in ROUTES])
def test_console_route_by_role(
    console: tuple[FastAPI, dict[str, str]], name: str, method: str, path: str
) -> None:
    app, _ = console
    rule = RULES[name]
    anonymous = _browser(app).request(method, _url(path), follow_redirects=False)
    if method == "GET":
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/console/login?next=")
    else:
        assert anonymous.status_code == 401
    for role in ROLES:
        browser = _browser(app, BY_ROLE[role])
        page = browser.get("/console/")
        token = csrf_of(page.text) if page.status_code == 200 else _token(browser)
        answer = browser.request(
            method, _url(path), headers={"X-CSRF-Token": token}, follow_redirects=False
        )
        if role in rule.roles and rule.limit != "consortium":
            assert answer.status_code not in (401, 403), (role, answer.text[:500])
        else:
            assert answer.status_code == 403, (role, answer.status_code)
            assert "无权访问" in answer.text
        if role in CONSORTIUM and role in rule.roles:
            wide = _browser(app, CONSORTIUM[role])
            token = csrf_of(wide.get("/console/overview").text)
            answer = wide.request(
                method, _url(path), headers={"X-CSRF-Token": token}, follow_redirects=False
            )
            assert answer.status_code not in (401, 403), (role, answer.text[:500])


def _token(browser: TestClient) -> str:
    """The CSRF token of a session that may open no page: from the home page."""
    answer = browser.get("/console/", follow_redirects=True)
    return csrf_of(answer.text)


def test_session_cookie_flags_and_secure_headers(console: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = console
    answer = login(_browser(app), "county-operator")
    cookie = answer.headers["set-cookie"].lower()
    assert "yigongti_console=" in cookie
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    page = _browser(app, "county-operator").get("/console/overview")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"
    # every asset is local: no URL of another host in the page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)


def test_wrong_secret_is_refused_and_audited(console: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = console
    answer = login(_browser(app), "county-operator", secret="not-the-secret")
    assert answer.status_code == 401
    assert "yigongti_console=" not in answer.headers.get("set-cookie", "")
    with app.state.session_factory() as session:
        bodies = session.scalars(select(AuditRecord.body).order_by(AuditRecord.seq.desc())).all()
    assert any('"via":"console"' in b and '"invalid_client"' in b for b in bodies[:20])


def test_an_api_token_is_no_session(console: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = console
    browser = _browser(app)
    token = Tokens(browser).get("county-operator")
    browser.cookies.set("yigongti_console", token, path="/console")
    answer = browser.get("/console/overview", follow_redirects=False)
    assert answer.status_code == 303  # to the login page


def test_csrf_token_and_origin_are_checked(console: tuple[FastAPI, dict[str, str]]) -> None:
    app, ids = console
    browser = _browser(app, "county-operator")
    page = browser.get(f"/console/messages/{ids['county']}")
    token = csrf_of(page.text)
    target = f"/console/messages/{ids['county']}/reprocess"
    missing = browser.post(target, follow_redirects=False)
    assert missing.status_code == 403 and "CSRF" in missing.text
    wrong = browser.post(target, data={"csrf_token": "x" + token}, follow_redirects=False)
    assert wrong.status_code == 403
    elsewhere = browser.post(
        target,
        data={"csrf_token": token},
        headers={"Origin": "http://evil.example"},
        follow_redirects=False,
    )
    assert elsewhere.status_code == 403
    good = browser.post(target, data={"csrf_token": token}, follow_redirects=False)
    assert good.status_code == 303
    assert "result=quarantined" in good.headers["location"]
    # another session's token is not this session's
    other = csrf_of(_browser(app, "county-operator").get("/console/overview").text)
    assert browser.post(target, data={"csrf_token": other}).status_code == 403


def test_a_facility_sees_its_own_messages_and_destinations(
    console: tuple[FastAPI, dict[str, str]],
) -> None:
    app, ids = console
    township = _browser(app, "shiqiao-operator")
    listing = township.get("/console/messages")
    assert ids["shiqiao"] in listing.text and ids["county"] not in listing.text
    assert township.get(f"/console/messages/{ids['county']}").status_code == 404
    assert township.get(f"/console/messages/{ids['county']}/raw").status_code == 404
    deliveries = township.get("/console/deliveries").text
    assert "shiqiao-fhir" in deliveries and "county-hospital-fhir" not in deliveries
    overview = township.get("/console/overview.json").json()
    assert [d["destination"] for d in overview["destinations"]] == ["shiqiao-fhir"]
    assert overview["reviews"] is None  # the patient index is consortium-wide
    token = csrf_of(listing.text)
    pause = township.post(
        "/console/destinations/county-hospital-fhir/pause",
        data={"csrf_token": token, "action": "pause"},
    )
    assert pause.status_code == 404
    wide = _browser(app, "consortium-operator")
    assert ids["county"] in wide.get("/console/messages").text
    assert wide.get("/console/overview.json").json()["reviews"] == 0


def test_another_facility_s_message_and_delivery_cannot_be_acted_on(
    console: tuple[FastAPI, dict[str, str]],
) -> None:
    app, ids = console
    county = _browser(app, "county-operator")
    with app.state.session_factory() as session:
        from adapter.store import outbox

        _, rows = outbox.list_deliveries(session, destination="county-hospital-fhir", limit=1)
    assert rows, "the township's results are routed to the county hospital's destination"
    delivery = rows[0].id
    assert county.get(f"/console/deliveries/{delivery}").status_code == 200
    township = _browser(app, "shiqiao-operator")
    token = csrf_of(township.get("/console/overview").text)
    form = {"csrf_token": token}
    assert township.get("/console/overview").status_code == 200
    assert township.get(f"/console/deliveries/{delivery}").status_code == 404
    assert township.post(f"/console/deliveries/{delivery}/replay", data=form).status_code == 404
    replay_many = township.post(
        "/console/deliveries/replay", data={**form, "destination": "county-hospital-fhir"}
    )
    assert replay_many.status_code == 404
    reprocess = township.post(f"/console/messages/{ids['county']}/reprocess", data=form)
    assert reprocess.status_code == 404
    many = township.post("/console/messages/reprocess", data={**form, "ids": [ids["county"]]})
    assert many.status_code == 200 and ids["county"][:8] not in many.text
    mappings = township.get("/console/mappings").text
    assert "shiqiao-lis" in mappings and "std-hl7v2" not in mappings
    # (the recognition rates by facility: the browser test's county figures; here no decision)
    assert township.get("/console/recognition").status_code == 200
    referrals = township.get("/console/referrals?show=all")
    assert referrals.status_code == 200 and "data-task=" not in referrals.text
    assert township.get("/console/referrals/t-none").status_code == 404


def test_reprocessing_many_shows_each_result(console: tuple[FastAPI, dict[str, str]]) -> None:
    app, ids = console
    county = _browser(app, "county-operator")
    token = csrf_of(county.get("/console/messages").text)
    ticked = county.post(
        "/console/messages/reprocess", data={"csrf_token": token, "ids": [ids["county"]]}
    )
    assert ticked.status_code == 200
    rows = re.findall(r"<tr><td><a href=\"/console/messages/([^\"]+)\">", ticked.text)
    assert rows == [ids["county"]]
    assert "已重新处理 1 条消息" in ticked.text and ticked.text.count("已隔离") == 2
    by_status = county.post(
        "/console/messages/reprocess", data={"csrf_token": token, "status": "quarantined"}
    )
    assert re.findall(r"<tr><td><a href=\"/console/messages/([^\"]+)\">", by_status.text) == [
        ids["county"]
    ]


def test_two_persons_are_merged_and_unmerged_with_history(
    console: tuple[FastAPI, dict[str, str]],
) -> None:
    app, _ = console
    with app.state.session_factory() as session:
        persons = sorted({r.person_id for r in session.scalars(select(IdentityRecord))})
    assert len(persons) == 2
    survivor, merged = persons
    wide = _browser(app, "consortium-operator")
    token = csrf_of(wide.get("/console/patients").text)
    done = wide.post(
        "/console/patients/merges",
        data={"csrf_token": token, "survivor": f"Patient/{survivor}", "merged": merged},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/patients/persons/{survivor}"
    page = wide.get(done.headers["location"]).text
    assert page.count("<code>Patient/") >= 2 and "撤销合并" in page
    assert "430999195001150822" not in page
    merge_id = re.search(r"/console/patients/merges/(\d+)/unmerge", page)
    assert merge_id is not None
    undone = wide.post(
        f"/console/patients/merges/{merge_id.group(1)}/unmerge",
        data={"csrf_token": token, "person": survivor},
        follow_redirects=False,
    )
    assert undone.status_code == 303
    after = wide.get(f"/console/patients/persons/{survivor}").text
    assert "撤销合并" not in after  # the merge is undone, its history kept
    history = after.split('id="history-h"', 1)[1]
    assert "<td>merge " in history and "<td>unmerge " in history


FACILITY_COVERED = {
    "console_overview", "console_overview_data", "console_messages", "console_message",
    "console_message_raw", "console_reprocess", "console_reprocess_many", "console_deliveries",
    "console_delivery", "console_replay", "console_replay_many", "console_pause",
    "console_recognition", "console_mappings", "console_referrals", "console_referral",
    # the ledger, its export and the analysis: tests/console/test_console_referrals.py
    "console_referral_ledger", "console_referral_ledger_export", "console_referral_analysis",
}  # fmt: skip


def test_every_facility_limited_console_route_is_covered_here() -> None:
    limited = {n for n, rule in RULES.items() if rule.limit == "facility" and rule.session}
    assert limited == FACILITY_COVERED, "a console route limited by facility needs a test here"


def test_messages_are_found_by_a_patient_identifier_and_listed_masked(
    console: tuple[FastAPI, dict[str, str]],
) -> None:
    app, ids = console
    township = _browser(app, "shiqiao-operator")
    found = township.get("/console/messages", params={"patient": "430999195001150822"})
    assert re.findall(r'data-message="([^"]+)"', found.text) == [ids["shiqiao"]]
    assert "430999195001150822" not in found.text.split("<table", 1)[1]  # the list: masked
    assert "430999********0822" in found.text and "韩**" in found.text
    card = township.get("/console/messages", params={"patient": "JK4309990000816"})
    assert re.findall(r'data-message="([^"]+)"', card.text) == [ids["shiqiao"]]
    nobody = township.get("/console/messages", params={"patient": "000000000000000000"})
    assert "data-message=" not in nobody.text


def test_identifiers_are_masked_and_content_is_for_operators(
    console: tuple[FastAPI, dict[str, str]],
) -> None:
    app, ids = console
    operator = _browser(app, "county-operator").get(f"/console/messages/{ids['county']}")
    assert operator.status_code == 200
    assert NATIONAL_ID not in operator.text
    assert "张^伟" not in operator.text and "张^*" in operator.text
    # the located issue is marked in place
    assert re.search(r'<mark id="issue-0" class="error"[^>]*>20261345</mark>', operator.text)
    admin = _browser(app, "county-admin").get(f"/console/messages/{ids['county']}")
    assert admin.status_code == 200 and "20261345</mark>" not in admin.text
    assert (
        _browser(app, "county-admin").get(f"/console/messages/{ids['county']}/raw").status_code
        == 403
    )


def test_language_switch_and_catalogues() -> None:
    assert set(catalogue("zh-CN")) == set(catalogue("en"))


def test_english_pages(console: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = console
    browser = _browser(app, "county-operator")
    assert "总览" in browser.get("/console/overview").text
    switched = browser.get("/console/lang/en?next=/console/overview")
    assert switched.status_code == 200 and "Overview" in switched.text
    elsewhere = browser.get("/console/lang/en?next=//evil.example/", follow_redirects=False)
    assert elsewhere.headers["location"] == "/console/"


def test_no_page_or_script_of_the_console_names_another_host() -> None:
    """Offline hospitals: templates, the script and the style sheet load nothing from the
    internet (the vendored ECharts is checked by its README's hash, not here)."""
    console = PROJECT_ROOT / "adapter/console"
    files = [*console.glob("templates/*.html"), *console.glob("static/console.*")]
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text), path
        assert "@import" not in text, path


def test_the_last_mapping_check_survives_a_restart(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("mappings-restart")
    with auth_client(module_database_url, folder) as (app, _):
        browser = _browser(app, "county-operator")
        token = csrf_of(browser.get("/console/mappings").text)
        assert "尚未运行" in browser.get("/console/mappings").text
        ran = browser.post("/console/mappings/run", data={"csrf_token": token})
        assert ran.status_code == 200 and 'id="check-summary"' in ran.text
        summary = re.search(r'id="check-summary"[^>]*>([^<]+)<', ran.text)
        assert summary is not None and "county-operator" in summary.group(1)
    kept = folder / "data" / "console" / "mappings-last-run.json"
    assert kept.is_file()
    # a new process (a new app on the same data directory) shows the same result
    with auth_client(module_database_url, folder) as (app, _):
        page = _browser(app, "consortium-operator").get("/console/mappings").text
        again = re.search(r'id="check-summary"[^>]*>([^<]+)<', page)
        assert again is not None and again.group(1) == summary.group(1)
        assert page.count("<tr><td><code>") == ran.text.count("<tr><td><code>")
    # an unreadable file is ignored (logged), the page still answers
    kept.write_text("{not json", encoding="utf-8")
    with auth_client(module_database_url, folder) as (app, _):
        page = _browser(app, "county-operator").get("/console/mappings").text
        assert "尚未运行" in page


def test_the_deliveries_page_shows_what_the_outbox_retention_pruned(
    console: tuple[FastAPI, dict[str, str]],
) -> None:
    """The 投递 table's 已清理 column is ``delivery_destination.pruned_total`` (decision 0064);
    the prune that fills it is tested in tests/integration/test_outbox_retention.py."""
    app, _ = console
    with app.state.session_factory.begin() as session:
        outbox.ensure(session, "shiqiao-fhir", datetime.now(UTC))
        session.execute(
            update(DeliveryDestination)
            .where(DeliveryDestination.destination == "shiqiao-fhir")
            .values(pruned_total=7)
        )
    page = _browser(app, "shiqiao-operator").get("/console/deliveries").text
    assert re.search(r'data-field="pruned">7</td>', page)
    assert "已清理" in page or "Pruned" in page
