"""The recognition mark (互认标识) on stored results: real HL7 v2 lab messages through the
real app and pipeline into the real database, with the example catalogue
(fixtures/recognition.yaml: 石桥 passed its EQA 2026-04-15..2027-04-14, 柳河's 临床血液
pass ran 2025-09-20..2026-09-19)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.recognition.parameters import MARK_SYSTEM
from adapter.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CBC = (ROOT / "fixtures" / "hl7v2" / "oru" / "shiqiao-lis" / "cbc-18-st.hl7").read_bytes()
NS = "https://qingshan.example.cn/fhir/sid"
# the items of the catalogue among the 18 results of the blood count (石桥's local codes)
ITEMS = {"WBC", "RBC", "HGB", "PLT"}


def cbc(order: str, *, day: str = "20261124", wbc_status: str = "") -> bytes:
    """The 石桥 blood count as another order (new results), on another day, with an OBX-11
    status on its first result (WBC)."""
    text = CBC.decode("utf-8")
    text = text.replace("YY2611240003", f"YY{order}").replace("SQ20261124005", f"SQ{order}")
    text = text.replace("20261124", day)
    text = text.replace("|偏低||||||", f"|偏低|||{wbc_status}|||", 1)
    return text.encode("utf-8")


def send(client: TestClient, raw: bytes, source: str = "shiqiao-lis") -> list[str]:
    sent = client.post(
        "/ingest",
        content=raw,
        headers={"X-Source-System": source, "Content-Type": "application/hl7-v2"},
    )
    assert sent.status_code == 202, sent.text
    return [r for r in sent.json()["resources"] if r.startswith("Observation/")]


def read(client: TestClient, reference: str) -> dict[str, Any]:
    response = client.get(f"/fhir/{reference}")
    assert response.status_code == 200, response.text
    return response.json()


def marks(body: dict[str, Any]) -> list[str]:
    return [t["code"] for t in body.get("meta", {}).get("tag", []) if t["system"] == MARK_SYSTEM]


def local_code(body: dict[str, Any]) -> str:
    return next(c["code"] for c in body["code"]["coding"] if c["system"].endswith("/lab-item"))


def by_code(client: TestClient, references: list[str]) -> dict[str, dict[str, Any]]:
    bodies = [read(client, r) for r in references]
    return {local_code(b): b for b in bodies}


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def test_results_of_catalogue_items_from_a_qualified_lab_carry_the_mark(client):
    results = by_code(client, send(client, cbc("M01")))
    assert len(results) == 18
    for code, body in results.items():
        assert marks(body) == (["HR"] if code in ITEMS else []), code
    tag = next(t for t in results["WBC"]["meta"]["tag"] if t["system"] == MARK_SYSTEM)
    assert tag["display"] == "检查检验结果互认 (医共体内)"


def test_marked_results_are_found_by_tag(client):
    references = send(client, cbc("M02"))
    found = client.get(
        "/fhir/Observation",
        params={"_tag": f"{MARK_SYSTEM}|HR", "_count": 200, "_elements": "code"},
    )
    assert found.status_code == 200, found.text
    ids = {f"Observation/{e['resource']['id']}" for e in found.json().get("entry", [])}
    mine = by_code(client, references)
    assert {f"Observation/{mine[c]['id']}" for c in ITEMS} <= ids
    assert f"Observation/{mine['HCT']['id']}" not in ids


def test_a_correction_keeps_the_mark_a_cancellation_removes_it(client):
    wbc = by_code(client, send(client, cbc("M03")))["WBC"]
    assert marks(wbc) == ["HR"]
    corrected = by_code(client, send(client, cbc("M03", wbc_status="C")))["WBC"]
    assert corrected["id"] == wbc["id"] and corrected["status"] == "corrected"
    assert corrected["meta"]["versionId"] != wbc["meta"]["versionId"]
    assert marks(corrected) == ["HR"]
    cancelled = by_code(client, send(client, cbc("M03", wbc_status="D")))["WBC"]
    assert cancelled["status"] == "entered-in-error"
    assert marks(cancelled) == []
    # the versions keep what they said when they were issued
    first = read(client, f"Observation/{wbc['id']}/_history/{wbc['meta']['versionId']}")
    assert marks(first) == ["HR"]


def test_a_preliminary_result_is_not_marked_until_final(client):
    preliminary = by_code(client, send(client, cbc("M04", wbc_status="P")))["WBC"]
    assert preliminary["status"] == "preliminary" and marks(preliminary) == []
    final = by_code(client, send(client, cbc("M04", wbc_status="F")))["WBC"]
    assert final["status"] == "final" and marks(final) == ["HR"]


def test_the_assessment_in_force_on_the_result_day_decides(client):
    # 柳河's 临床血液 pass ran until 2026-09-19: a count taken on 2026-08-20 is marked though
    # it is stored after the pass expired; one taken on 2026-11-24 is not
    august = by_code(client, send(client, cbc("L01", day="20260820"), "liuhe-lis"))
    assert marks(august["WBC"]) == ["HR"]
    november = by_code(client, send(client, cbc("L02"), "liuhe-lis"))
    assert marks(november["WBC"]) == []
    # 石桥 before its first pass (2026-04-15): no assessment in force, no mark
    march = by_code(client, send(client, cbc("M05", day="20260301")))
    assert marks(march["WBC"]) == []


def test_the_capability_statement_documents_the_mark(client):
    statement = client.get("/fhir/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for rtype in ("Observation", "DiagnosticReport"):
        assert MARK_SYSTEM in resources[rtype]["documentation"], rtype
        assert "_tag" in resources[rtype]["documentation"]
    assert MARK_SYSTEM not in resources["Patient"].get("documentation", "")


def test_no_mark_when_the_catalogue_turns_it_off(database_url, tmp_path):
    text = (ROOT / "fixtures" / "recognition.yaml").read_text(encoding="utf-8")
    assert "\nmark_results: true" in text
    off = tmp_path / "recognition.yaml"
    off.write_text(text.replace("\nmark_results: true", "\nmark_results: false"), "utf-8")
    app = create_app(Settings(database_url=database_url, recognition_catalogue=off))
    with TestClient(app) as client:
        results = by_code(client, send(client, cbc("M06")))
        assert all(marks(b) == [] for b in results.values())
        statement = client.get("/fhir/metadata").json()
        observation = next(
            r for r in statement["rest"][0]["resource"] if r["type"] == "Observation"
        )
        assert MARK_SYSTEM not in observation.get("documentation", "")
    app.state.engine.dispose()
