"""The console in a real browser: Debian's headless Chromium driven by Playwright, against
a real ``adapter serve`` on loopback (authentication on, the example consortium plus test
clients, the in-process delivery worker) and a FHIR destination on loopback that refuses
until told otherwise (the network edge: the only stand-in).

Journeys: log in and watch the overview refresh itself; find a quarantined message, see
its located error marked in the content, fix the mapping, reprocess it; see a dead letter's
answer and replay it; pause and resume a destination; resolve a review-queue item; export
the 转诊台账 and open the XLSX; read the referral analysis's and the 互认 charts' numbers
(against the API's); a role without the page is refused; the language switch. Each
page's screenshot is saved under ``test-artifacts/console/`` (git-ignored). Skipped when
/usr/bin/chromium is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from adapter.settings import DEFAULT_MAPPINGS, PROJECT_ROOT
from tests.api.auth_helpers import consortium_with_clients, secret_of
from tests.identity.hl7 import national_id, oru
from tests.live.server import LiveServer

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

SHOTS = PROJECT_ROOT / "test-artifacts" / "console"
HELD_BACK = Path("_shared/hl7v2/messages/oul_r24.yaml")  # the "mapping fix" of the journey
URINE = PROJECT_ROOT / "fixtures/hl7v2/oul/std-hl7v2/urine-r24.hl7"
TOWNSHIP = PROJECT_ROOT / "fixtures/hl7v2/oru/shiqiao-lis/biochem-lf.hl7"
DOWN_SLIP = PROJECT_ROOT / "fixtures/hl7v2/referral/std-hl7v2/down-slip-15-digit-id.hl7"
UP_SLIP = PROJECT_ROOT / "fixtures/xml/referral/shiqiao-his/up-slip.xml"  # 石桥 -> 县医院
PERIOD = "from=2026-01-01&to=2026-12-31"
WAIT_MS = 60_000  # a loaded machine (2 cores, parallel runs) is slow: waits, not timings


class Destination(BaseHTTPRequestHandler):
    """A FHIR server that answers every PUT 422 with an OperationOutcome while ``refuse``."""

    refuse = True
    received: list[str] = []  # noqa: RUF012 - one per test module, shared on purpose

    def do_PUT(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        Destination.received.append(self.path)
        if Destination.refuse:
            body = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "diagnostics": "拒收: 测试"}],
            }
            self._answer(422, body)
        else:
            self._answer(200, {"resourceType": "OperationOutcome", "issue": []})

    def do_GET(self) -> None:
        self._answer(200, {"resourceType": "CapabilityStatement", "status": "active"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class Site:
    def __init__(self, server: LiveServer, mappings: Path, folder: Path) -> None:
        self.server = server
        self.mappings = mappings
        self.folder = folder
        self.messages: dict[str, str] = {}

    def url(self, path: str) -> str:
        return self.server.url(path)

    def token(self, client_id: str) -> str:
        answer = httpx.post(
            self.url("/auth/token"),
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret_of(client_id),
            },
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def ingest(
        self, client_id: str, source: str, path: Path | bytes, media: str = "application/hl7-v2"
    ) -> str:
        answer = httpx.post(
            self.url("/ingest"),
            content=path if isinstance(path, bytes) else path.read_bytes(),
            headers={
                "Authorization": f"Bearer {self.token(client_id)}",
                "X-Source-System": source,
                "Content-Type": media,
            },
        )
        assert answer.status_code in (202, 422), answer.text
        return answer.headers["X-Message-Id"]

    def get(self, client_id: str, path: str) -> Any:
        answer = httpx.get(
            self.url(path), headers={"Authorization": f"Bearer {self.token(client_id)}"}
        )
        answer.raise_for_status()
        return answer.json()

    def accept_up_referral(self) -> None:
        answer = httpx.post(
            self.url("/ingest"),
            content=UP_SLIP.read_bytes(),
            headers={
                "Authorization": f"Bearer {self.token('shiqiao-source')}",
                "X-Source-System": "shiqiao-his",
                "Content-Type": "application/xml",
            },
        )
        assert answer.status_code == 202, answer.text
        task = next(r for r in answer.json()["resources"] if r.startswith("Task/"))
        self.messages["up-task"] = task.split("/", 1)[1]
        for status in ("received", "accepted"):
            answer = httpx.patch(
                self.url(f"/fhir/{task}"),
                json=[{"op": "replace", "path": "/status", "value": status}],
                headers={
                    "Authorization": f"Bearer {self.token('county-reader')}",
                    "Content-Type": "application/json-patch+json",
                },
            )
            assert answer.status_code == 200, answer.text

    def decide_twice(self, message_id: str) -> None:
        """Two doctors' 不互认 decisions about the message's patient (the 互认 page's figures)."""
        operator = {"Authorization": f"Bearer {self.token('county-operator')}"}
        made = httpx.get(self.url(f"/messages/{message_id}"), headers=operator).json()
        patient = next(r for r in made["resources"] if r.startswith("Patient/"))
        reader = {
            "Authorization": f"Bearer {self.token('county-reader')}",
            "Content-Type": "application/fhir+json",
        }
        for order, reason in (("MZ-1", "condition-changed"), ("MZ-2", "fast-changing")):
            parameters = {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "order", "valueString": order},
                    {"name": "item", "valueCode": "QS-JY-001"},
                    {"name": "facility", "valueString": "qingshan-county-hospital"},
                    {"name": "doctor", "valueString": "D0412"},
                    {"name": "decision", "valueCode": "not-recognised"},
                    {"name": "reason", "valueCode": reason},
                ],
            }
            answer = httpx.post(
                self.url(f"/fhir/{patient}/$recognition-decision"),
                json=parameters,
                headers=reader,
            )
            assert answer.status_code in (200, 201), answer.text


@pytest.fixture(scope="module")
def site(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("console-site")
    mappings = folder / "mappings"
    shutil.copytree(DEFAULT_MAPPINGS, mappings)
    (mappings / HELD_BACK).unlink()  # OUL^R24 has no mapping until the journey "fixes" it
    fhir = ThreadingHTTPServer(("127.0.0.1", 0), Destination)
    threading.Thread(target=fhir.serve_forever, daemon=True).start()
    config = consortium_with_clients(folder)
    text = config.read_text(encoding="utf-8")
    text = text.replace(
        "          base_url: http://127.0.0.1:8090/fhir",
        f"          base_url: http://127.0.0.1:{fhir.server_port}/fhir\n          bundle: none",
        1,
    ).replace("\n        enabled: false", "\n        enabled: true", 1)  # the county's only
    config.write_text(text, encoding="utf-8")
    env = {
        "ADAPTER_AUTH": "on",
        "ADAPTER_CONFIG": str(config),
        "ADAPTER_MAPPINGS_DIR": str(mappings),
        "ADAPTER_DELIVER_IN_PROCESS": "true",
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(module_database_url, folder, env=env) as server:
        found = Site(server, mappings, folder)
        found.messages["quarantined"] = found.ingest("county-source", "std-hl7v2", URINE)
        found.messages["township"] = found.ingest("shiqiao-source", "shiqiao-lis", TOWNSHIP)
        found.ingest("county-source", "std-hl7v2", DOWN_SLIP)  # a 下转 referral Task
        found.accept_up_referral()  # a 上转 referral Task, accepted by the county hospital
        # two records a rule cannot decide alone: a review-queue item (twin guard)
        nid = national_id("430999", "19800101", "022")
        twin = oru(name="王芳", birth="19800101", sex="F", nid=nid, local="A2")
        found.decide_twice(found.ingest("county-source", "std-hl7v2", twin))
        other = oru(name="王方", birth="19800101", sex="F", local="B2")
        found.ingest("shiqiao-source", "shiqiao-lis", other)
        yield found
    fhir.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # the confirmations are accepted
    yield tab
    context.close()


def log_in(page: Any, site: Site, client_id: str, target: str = "/console/") -> None:
    page.goto(site.url(target))
    assert "/console/login" in page.url
    page.get_by_label("客户端编号").fill(client_id)
    page.get_by_label("密钥").fill(secret_of(client_id))
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(lambda url: "/console/login" not in url)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_log_in_and_the_overview_refreshes_itself(page: Any, site: Site) -> None:
    page.goto(site.url("/console/login"))
    shot(page, "login")
    # keyboard: the client id has the focus, Tab goes on to the secret (both are labelled)
    assert page.evaluate("document.activeElement.id") == "client_id"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "secret"
    log_in(page, site, "consortium-operator")
    assert page.url.endswith("/console/overview")
    # keyboard: the first Tab reaches the skip link, which moves the focus to the content
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.locator("#tile-quarantined").inner_text() == "1"
    # no deadline scheduler runs here: nothing overdue (its figures: test_console_referrals.py)
    assert page.locator("#tile-overdue").inner_text() == "0"
    assert page.get_by_role("link", name="超时转诊").get_attribute("href") == (
        "/console/referrals?show=overdue"
    )
    # the figures come as JSON into the same page: no navigation happens
    page.evaluate("window.__still_here = true")
    page.get_by_role("button", name="立即刷新").click()
    page.wait_for_selector('#overview-at[data-refreshed="1"]')  # (CSP: no eval in the page)
    assert page.evaluate("window.__still_here") is True
    assert page.locator('#destinations tr[data-destination="county-hospital-fhir"]').count() == 1
    shot(page, "overview")


def test_a_quarantined_message_is_found_located_fixed_and_reprocessed(
    page: Any, site: Site
) -> None:
    log_in(page, site, "county-operator", "/console/messages")
    page.get_by_label("状态").select_option("quarantined")
    page.get_by_role("button", name="查询").click()
    page.wait_for_url("**status=quarantined**")
    message_id = site.messages["quarantined"]
    rows = page.locator("#message-list tbody tr")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-message") == message_id
    shot(page, "messages")
    rows.first.get_by_role("link", name=message_id[:8]).click()
    page.wait_for_url(f"**/console/messages/{message_id}")
    # the located error: MSH-9, marked in place in the decoded content
    issue = page.locator("#issue-list li").first
    assert "MSH-9" in issue.inner_text() and "OUL^R24" in issue.inner_text()
    mark = page.locator("#source mark#issue-0")
    assert mark.inner_text() == "OUL^R24^OUL_R24"
    assert mark.is_visible()
    issue.get_by_role("link", name="MSH-9").click()
    assert page.url.endswith("#issue-0")
    assert page.locator("#message-status").inner_text() == "已隔离"
    shot(page, "message-quarantined")
    # the mapping fix: the message type's mapping is put back, then reprocess
    shutil.copyfile(DEFAULT_MAPPINGS / HELD_BACK, site.mappings / HELD_BACK)
    page.get_by_role("button", name="用当前映射重新处理").click()
    page.wait_for_selector("#reprocess-result")
    assert page.locator("#reprocess-result").inner_text() == "已重新处理: 已隔离 → 已处理"
    assert page.locator("#message-status").inner_text() == "已处理"
    assert page.locator("#resource-list li").count() > 1
    shot(page, "message-reprocessed")


def _dead_letter(page: Any, site: Site) -> None:
    """Wait until the refusing destination has made a dead letter (the worker runs apart)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        page.goto(site.url("/console/deliveries?destination=county-hospital-fhir&state=dead"))
        if page.locator("#delivery-list tbody tr[data-delivery]").count():
            return
        page.wait_for_timeout(500)
    raise AssertionError(
        f"no dead letter was made; the destination had {Destination.received[:5]}; "
        f"the server logged:\n{_not_access(site.server.log_text())[-3000:]}"
    )


def _not_access(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if "adapter.access" not in line)


def test_a_dead_letter_shows_the_answer_and_is_replayed(page: Any, site: Site) -> None:
    log_in(page, site, "county-operator", "/console/deliveries")
    _dead_letter(page, site)
    first = page.locator("#delivery-list tbody tr[data-delivery]").first
    delivery_id = first.get_attribute("data-delivery")
    first.get_by_role("link", name=delivery_id).click()
    page.wait_for_url(f"**/console/deliveries/{delivery_id}")
    assert page.locator("#delivery-state").inner_text() == "死信"
    answers = page.locator("#attempts").inner_text()
    assert "422" in answers and "拒收: 测试" in answers
    shot(page, "delivery-dead")
    Destination.refuse = False  # the destination is fixed
    page.get_by_role("button", name="重新发送").click()  # confirmed by the dialog handler
    page.wait_for_selector("#done")
    deadline = time.monotonic() + WAIT_MS / 1000
    while page.locator("#delivery-state").inner_text() != "已投递":
        assert time.monotonic() < deadline, "the replayed delivery was not delivered"
        page.wait_for_timeout(500)
        page.reload()
    # the destination's other dead letters, all at once (after a confirmation)
    page.goto(site.url("/console/deliveries"))
    row = page.locator('#destination-table tr[data-destination="county-hospital-fhir"]')
    if row.locator('[data-state="dead"]').inner_text() != "0":
        row.get_by_role("button", name="重发死信 county-hospital-fhir").click()
        page.wait_for_selector("#done")
        assert "已重新排队" in page.locator("#done").inner_text()
    shot(page, "deliveries")


def test_a_destination_is_paused_and_resumed(page: Any, site: Site) -> None:
    log_in(page, site, "county-operator", "/console/deliveries")
    row = page.locator('#destination-table tr[data-destination="county-hospital-fhir"]')
    row.get_by_role("button", name="暂停 county-hospital-fhir").click()
    page.wait_for_selector("#done")
    row = page.locator('#destination-table tr[data-destination="county-hospital-fhir"]')
    assert row.locator('[data-field="breaker"]').inner_text() == "已暂停 (county-operator)"
    shot(page, "deliveries-paused")
    row.get_by_role("button", name="恢复 county-hospital-fhir").click()
    page.wait_for_selector("#done")
    row = page.locator('#destination-table tr[data-destination="county-hospital-fhir"]')
    assert row.locator('[data-field="breaker"]').inner_text() == "正常"


def test_a_review_queue_item_is_resolved(page: Any, site: Site) -> None:
    log_in(page, site, "consortium-operator", "/console/patients")
    rows = page.locator("#review-list tbody tr[data-review]")
    assert rows.count() == 1
    assert "王*" in rows.first.inner_text() and "王芳" not in rows.first.inner_text()
    shot(page, "patients")
    item = rows.first.get_attribute("data-review")
    rows.first.get_by_role("link", name=item).click()
    page.wait_for_url(f"**/console/patients/reviews/{item}")
    # both records side by side, the names in full for the comparison, IDs masked
    names = page.locator('dd[data-field="name"]').all_inner_texts()
    assert sorted(names) == ["王方", "王芳"]
    assert national_id("430999", "19800101", "022") not in page.content()
    shot(page, "review")
    page.get_by_role("button", name="认领").click()
    page.wait_for_selector("#review-state:text('已认领')")
    page.get_by_label("备注").fill("同一人: 电话与住址一致")
    page.get_by_role("button", name="是同一人 (关联)").click()
    try:
        page.wait_for_selector("#review-resolution", timeout=15_000)
    except Exception:
        raise AssertionError(page.content()[-3000:]) from None
    assert page.locator("#review-state").inner_text() == "已完成"
    assert "consortium-operator" in page.locator("#review-resolution").inner_text()


def test_a_facility_operator_does_not_see_the_patient_index(page: Any, site: Site) -> None:
    log_in(page, site, "county-operator", "/console/overview")
    assert page.get_by_role("link", name="患者", exact=True).count() == 0
    page.goto(site.url("/console/patients"))
    assert page.get_by_role("heading", name="无权访问").is_visible()


def test_the_recognition_charts_show_their_numbers(page: Any, site: Site) -> None:
    log_in(page, site, "county-operator", "/console/recognition")
    reasons = page.locator("#reason-table tbody tr")
    assert reasons.count() == 2
    assert sorted(r.split("\t")[-1] for r in reasons.all_inner_texts()) == ["1", "1"]
    assert page.locator("#facility-table tbody").inner_text().split("\t")[1:] == ["0", "2", "0.0%"]
    # Apache ECharts (served by the adapter) drew the charts with the same numbers
    page.wait_for_selector("#chart-reasons svg")
    drawn = page.locator("#chart-reasons svg").text_content() or ""
    assert drawn.count("×1") == 2, drawn
    page.wait_for_selector("#chart-facility svg")
    assert "0%" in (page.locator("#chart-facility svg").text_content() or "")
    # by item: the one item decided, 0 of 2 recognised, as the item table says
    page.wait_for_selector("#chart-items svg")
    items = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('chart-items')).getOption()"
    )
    assert items["series"][0]["data"] == [0]
    assert items["yAxis"][0]["data"] == ["白细胞计数 (WBC)"]
    assert page.locator("#item-table tbody tr").count() == 1
    shot(page, "recognition")


def test_the_mappings_are_checked_on_request(page: Any, site: Site) -> None:
    log_in(page, site, "county-operator", "/console/mappings")
    sources = page.locator("#source-table tbody").inner_text()
    assert "std-hl7v2" in sources and "shiqiao-lis" not in sources  # its own facility's
    page.get_by_role("button", name="检查映射并运行黄金用例").click()
    page.wait_for_selector("#check-summary")
    assert " 0 项失败" in page.locator("#check-summary").inner_text()
    assert page.locator("#check-table tbody tr").count() >= 5
    shot(page, "mappings")


def test_the_auditor_reads_and_verifies_the_log_and_nothing_else(page: Any, site: Site) -> None:
    log_in(page, site, "county-auditor")
    assert page.url.endswith("/console/audit")
    nav = page.get_by_role("navigation", name="主导航")
    assert nav.get_by_role("link").all_inner_texts() == ["审计"]
    page.get_by_label("做了什么 (动作)").fill("message.quarantined")
    page.get_by_role("button", name="查询").click()
    page.wait_for_url("**action=message.quarantined**")
    assert page.locator("#audit-list tbody tr").count() == 1
    shot(page, "audit")
    page.get_by_role("button", name="校验审计链").click()
    page.wait_for_selector("#verify-result")
    assert page.locator("#verify-result").inner_text().startswith("审计链完整")
    page.goto(site.url("/console/deliveries"))
    assert page.get_by_role("heading", name="无权访问").is_visible()
    shot(page, "refused")


def test_a_reader_sees_the_referrals_only(page: Any, site: Site) -> None:
    log_in(page, site, "county-reader")
    assert page.url.endswith("/console/referrals")
    nav = page.get_by_role("navigation", name="主导航")
    assert nav.get_by_role("link").all_inner_texts() == ["转诊"]
    rows = page.locator("#referral-list tbody tr[data-task]")
    assert rows.count() == 2  # the county sends the 下转 and receives the 上转
    assert "下转" in rows.all_inner_texts()[0] + rows.all_inner_texts()[1]
    assert page.locator("#overdue-list").is_visible()
    shot(page, "referrals")
    rows = page.locator("#referral-list tbody tr[data-task]", has_text="下转")
    rows.first.get_by_role("link").click()
    page.wait_for_selector("#timeline")
    assert page.locator("#timeline tbody tr").count() >= 1
    assert "requested" in page.locator("#referral-status").inner_text()
    page.goto(site.url("/console/messages"))
    assert page.get_by_role("heading", name="无权访问").is_visible()


def test_the_language_switches_to_english(page: Any, site: Site) -> None:
    log_in(page, site, "county-operator", "/console/overview")
    page.get_by_role("link", name="English").click()
    page.wait_for_selector("h1:text('Overview')")
    assert page.get_by_role("link", name="Messages", exact=True).is_visible()
    shot(page, "overview-en")


def test_the_ledger_is_exported_and_the_xlsx_opened(page: Any, site: Site, tmp_path: Path) -> None:
    log_in(page, site, "county-reader", "/console/referrals/ledger")
    rows = page.locator("#ledger-table tbody tr[data-task]")
    assert rows.count() == 2
    page.get_by_label("方向").select_option("up")
    page.get_by_role("button", name="查询").click()
    page.wait_for_url("**direction=up**")
    rows = page.locator("#ledger-table tbody tr[data-task]")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-task") == site.messages["up-task"]
    slip = rows.first.locator('[data-field="slip_number"]').inner_text()
    shown = rows.first.locator('[data-field="patient"]').inner_text()
    assert "*" in shown  # masked
    shot(page, "referral-ledger")
    with page.expect_download() as waiting:
        page.get_by_role("link", name="XLSX").click()
    download = waiting.value
    assert download.suggested_filename == "referral-ledger.xlsx"
    target = tmp_path / "ledger.xlsx"
    download.save_as(str(target))
    sheet = openpyxl.load_workbook(target).active
    values = list(sheet.values)
    headers = list(values[0])
    assert headers[:2] == ["转诊单号", "转诊类型"] and len(values) == 2
    row = dict(zip(headers, values[1], strict=True))
    assert row["转诊单号"] == slip and row["转诊类型"] == "上转" and row["患者"] == shown
    assert row["状态"] == "已同意" and row["Task"] == f"Task/{site.messages['up-task']}"
    # the same file as the API's for the same filter
    api = httpx.get(
        site.url("/referrals/ledger?format=xlsx&direction=up"),
        headers={"Authorization": f"Bearer {site.token('county-reader')}"},
    )
    assert list(openpyxl.load_workbook(io.BytesIO(api.content)).active.values) == values


def test_the_referral_analysis_charts_show_the_api_s_numbers(page: Any, site: Site) -> None:
    log_in(page, site, "county-reader", f"/console/referrals/analysis?{PERIOD}")
    api = site.get("county-reader", f"/referrals/analysis?{PERIOD}")
    assert api["counts"]["up"] == 1 and api["counts"]["down"] == 1
    page.wait_for_selector("#chart-flows svg")
    # the numbers ECharts holds (its option as drawn) are the API's
    drawn = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('chart-flows')).getOption()"
    )
    assert drawn["series"][0]["data"] == [p["count"] for p in api["pairs"]]
    table = [r.split("\t") for r in page.locator("#flow-table tbody tr").all_inner_texts()]
    assert [int(r[-1]) for r in table] == [p["count"] for p in api["pairs"]]
    assert sorted(r[2] for r in table) == ["上转", "下转"]
    page.wait_for_selector("#chart-down-ratio svg")
    months = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('chart-down-ratio')).getOption()"
    )
    by_month = api["down_ratio_trend"]["by_month"]
    assert months["xAxis"][0]["data"] == [m["month"] for m in by_month]
    assert months["series"][0]["data"] == [m["up"] for m in by_month]
    assert months["series"][1]["data"] == [m["down"] for m in by_month]
    assert page.locator('[data-figure="down_ratio"]').inner_text() == str(api["down_ratio"])
    median = page.locator('[data-figure="median_minutes_to_accept"]').inner_text()
    assert median == str(api["median_minutes_to_accept"])
    rate = page.locator('#rate-table tr[data-rate="acceptance_rate"] td.num').inner_text()
    assert rate == f"{api['acceptance_rate'] * 100:.1f}%"
    page.wait_for_selector("#chart-loop svg")
    loop = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('chart-loop')).getOption()"
    )
    assert loop["series"][0]["data"][0] == round(api["acceptance_rate"] * 100, 1)
    drawn_text = page.locator("#chart-loop svg").text_content() or ""
    assert f"{api['acceptance_rate'] * 100:g}%" in drawn_text and "到诊率" in drawn_text
    page.wait_for_selector("#chart-accept svg")
    page.wait_for_selector("#chart-diagnoses svg")
    shot(page, "referral-analysis")
