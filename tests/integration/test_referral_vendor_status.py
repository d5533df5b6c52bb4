"""A vendor export with a status column moves the referral (issue 12 §1: "vendor exports
that carry a status field"): the county's HIS exports its referral register as CSV (康宁
HIS layout plus a 状态 column); a mapping folder made for the test maps 状态 (已接收 /
已同意 / 已拒绝) onto the Task's status. The pipeline step ``apply_referral_status``
applies it through the state machine as the county (the receiver): 已同意 accepts the
柳河 slip; the same export again changes nothing; the sender's own export saying 已同意 is
refused by rule (the sender does not accept).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.pipeline import Receipt
from adapter.settings import Settings
from tests.integration.referral_support import RECEIVER, ROOT, consortium_by_care

SLIPS = ROOT / "fixtures/csv/referral/liuhe-his-csv/ledger-two-slips.csv"
STATUS_MAP = """version: 1
kind: concept-map
description: the test vendor's 状态 column to FHIR Task.status
target_system: http://hl7.org/fhir/task-status
map:
  已申请: requested
  已接收: received
  已同意: accepted
  已拒绝: rejected
unmapped:
  action: fixed
  code: requested
  report: warning
"""


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Any]:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    vendor = mappings / "vendor-status"
    (vendor / "csv/messages").mkdir(parents=True)
    (vendor / "common/resources").mkdir(parents=True)
    (vendor / "concept-maps").mkdir(parents=True)
    (vendor / "concept-maps/referral-task-status.yaml").write_text(STATUS_MAP, encoding="utf-8")
    ledger = (mappings / "kangning-his/csv/messages/referral-ledger.yaml").read_text("utf-8")
    ledger = ledger.replace(
        "      slip_no: =转诊单号\n",
        "      slip_no: =转诊单号\n      task_status: =map('referral-task-status', 状态)\n",
    )
    (vendor / "csv/messages/referral-ledger.yaml").write_text(ledger, encoding="utf-8")
    task = (mappings / "_shared/common/resources/referral-task.yaml").read_text("utf-8")
    assert "  status: requested\n" in task
    task = task.replace("  status: requested\n", "  status: =first(@task_status, 'requested')\n")
    (vendor / "common/resources/referral-task.yaml").write_text(task, encoding="utf-8")

    config = consortium_by_care(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    county = next(f for f in data["facilities"] if f["id"] == RECEIVER)
    county["sources"].append({"id": "county-register", "format": "csv", "mapping": "vendor-status"})
    liuhe = next(f for f in data["facilities"] if f["id"] == "liuhe-township-centre")
    liuhe["sources"].append({"id": "liuhe-register", "format": "csv", "mapping": "vendor-status"})
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    app = create_app(Settings(database_url=database_url, config=config, mappings_dir=mappings))
    with TestClient(app):
        yield app
    app.state.engine.dispose()


def ingest(app: Any, raw: bytes, source: str) -> Any:
    result = app.state.pipeline.ingest(raw, Receipt(source, "cli", received_at=datetime.now(UTC)))
    assert result.status.startswith("processed"), result.issues
    return result


def register(status: str) -> bytes:
    """The county's export: the 柳河 ledger's first slip with a 状态 column."""
    lines = SLIPS.read_bytes().decode("utf-8-sig").splitlines()
    return f"{lines[0]},状态\r\n{lines[1]},{status}\r\n".encode()


def test_a_status_column_moves_the_task(app: Any) -> None:
    made = ingest(app, SLIPS.read_bytes(), "liuhe-his-csv")
    tasks = [r for r in made.resources if r.startswith("Task/")]
    client = TestClient(app)
    first = client.get(f"/fhir/{tasks[0]}").json()
    assert first["status"] == "requested"

    accepted = ingest(app, register("已同意"), "county-register")
    notes = " | ".join(str(i) for i in accepted.issues)
    assert f"referral {tasks[0]} moved to accepted by the message" in notes, notes
    task = client.get(f"/fhir/{tasks[0]}").json()
    assert (task["status"], task["meta"]["versionId"]) == ("accepted", "2")

    again = ingest(app, register("已同意").replace(b"\r\n", b"\n"), "county-register")
    assert "moved to" not in " | ".join(str(i) for i in again.issues)
    assert client.get(f"/fhir/{tasks[1]}").json()["status"] == "requested"  # not in it


def test_the_sender_cannot_accept_by_export(app: Any) -> None:
    made = ingest(app, SLIPS.read_bytes(), "liuhe-his-csv")
    task = next(r for r in made.resources if r.startswith("Task/"))
    # 柳河 itself exporting 已同意 through the vendor mapping: refused, named
    export = register("已同意")
    refused = ingest_as_sender(app, export)
    assert "refused by rule accepted-by-receiver" in " | ".join(str(i) for i in refused.issues)
    assert TestClient(app).get(f"/fhir/{task}").json()["status"] == "requested"


def ingest_as_sender(app: Any, raw: bytes) -> Any:
    return ingest(app, raw, "liuhe-register")
