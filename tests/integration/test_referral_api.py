"""Changing a referral Task over FHIR PATCH / PUT (issue 12 §1): through the real app on
the database (SQLite, PostgreSQL with ``-m db``), the up-slip of 石桥 to the county
hospital ingested through the real pipeline first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.pipeline import Receipt
from adapter.settings import Settings
from tests.integration.referral_support import (
    OTHER,
    RECEIVER,
    SENDER,
    UP_SLIP,
    as_facility,
    consortium_by_care,
    outbox_of,
    status_ops,
)


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, config=consortium_by_care(tmp_path))
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


def _referral(client: TestClient) -> tuple[str, str]:
    """Ingest the up-slip; its Task and ServiceRequest ids."""
    result = client.app.state.pipeline.ingest(  # type: ignore[attr-defined]
        UP_SLIP.read_bytes(), Receipt("shiqiao-his", "cli", received_at=datetime.now(UTC))
    )
    assert result.status.startswith("processed"), result.issues
    task = next(r for r in result.resources if r.startswith("Task/"))
    request = next(r for r in result.resources if r.startswith("ServiceRequest/"))
    return task.split("/", 1)[1], request.split("/", 1)[1]


def _rule(response: Any) -> str:
    text = response.json()["issue"][0]["diagnostics"]
    return text.split("refused by rule ", 1)[1].split(":", 1)[0]


def test_receiver_moves_the_task_once_and_both_parties_get_it(client: TestClient) -> None:
    task, _ = _referral(client)
    url = f"/fhir/Task/{task}"
    assert client.get(url).json()["status"] == "requested"
    first = client.patch(url, json=status_ops("received"), headers=as_facility(RECEIVER))
    assert first.status_code == 200, first.text
    assert first.headers["ETag"] == 'W/"2"'
    body = first.json()
    assert body["status"] == "received"
    assert body["businessStatus"]["text"] == "已接收"
    # the same change again: no new version
    again = client.patch(
        url, json=status_ops("received"), headers=as_facility(RECEIVER, **{"If-Match": 'W/"1"'})
    )
    assert again.status_code == 200 and again.headers["ETag"] == 'W/"2"'
    # a different change on a stale version: 412
    stale = client.patch(
        url, json=status_ops("accepted"), headers=as_facility(RECEIVER, **{"If-Match": 'W/"1"'})
    )
    assert stale.status_code == 412
    assert client.get(url).json()["meta"]["versionId"] == "2"
    # delivered like any change: version 2 to the sender and to the receiver (routing by care)
    rows = outbox_of(client.app.state.session_factory, f"Task/{task}")  # type: ignore[attr-defined]
    assert {d for d, v in rows if v == 2} == {"shiqiao-fhir", "county-hospital-fhir"}
    assert len([1 for _, v in rows if v == 2]) == 2


def test_refusals_name_the_rule(client: TestClient) -> None:
    task, _ = _referral(client)
    url = f"/fhir/Task/{task}"
    by_sender = client.patch(url, json=status_ops("accepted"), headers=as_facility(SENDER))
    assert by_sender.status_code == 409
    assert _rule(by_sender) == "accepted-by-receiver"
    outsider = client.patch(url, json=status_ops("received"), headers=as_facility(OTHER))
    assert outsider.status_code == 403 and _rule(outsider) == "party-not-involved"
    no_reason = client.patch(url, json=status_ops("rejected"), headers=as_facility(RECEIVER))
    assert no_reason.status_code == 409 and _rule(no_reason) == "reason-required"
    other_path = client.patch(
        url,
        json=[{"op": "replace", "path": "/owner", "value": {"reference": "Organization/x"}}],
        headers=as_facility(RECEIVER),
    )
    assert other_path.status_code == 422
    unknown = client.patch(url, json=status_ops("received"), headers=as_facility("nowhere"))
    assert unknown.status_code == 400
    assert client.get(url).json()["meta"]["versionId"] == "1"  # nothing changed


def test_put_with_prefer_minimal_and_rejection_leaves_the_request(client: TestClient) -> None:
    task, request = _referral(client)
    url = f"/fhir/Task/{task}"
    stored = client.get(url).json()
    wanted = {
        **stored,
        "status": "rejected",
        "statusReason": {
            "coding": [
                {
                    "system": "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/"
                    "referral-rejection-reason",
                    "code": "bed-full",
                }
            ],
            "text": "心内科床位已满",
        },
    }
    headers = {"X-Facility": RECEIVER, "If-Match": 'W/"1"', "Prefer": "return=minimal"}
    put = client.put(url, json=wanted, headers=headers)
    assert put.status_code == 200, put.text
    assert put.content == b"" and put.headers["ETag"] == 'W/"2"'
    now = client.get(url).json()
    assert now["statusReason"]["coding"][0]["display"] == "床位已满"
    # the only receiver rejected: the referral is revoked (the sender refers elsewhere)
    assert client.get(f"/fhir/ServiceRequest/{request}").json()["status"] == "revoked"
    # changing the owner is not a state change
    moved = {**now, "owner": {"reference": "Organization/elsewhere"}}
    refused = client.put(url, json=moved, headers={"X-Facility": RECEIVER})
    assert refused.status_code == 422
    assert "owner" in refused.json()["issue"][0]["diagnostics"]


def test_changes_and_refusals_are_audited(client: TestClient) -> None:
    from tests.audit.audit_support import records

    task, _ = _referral(client)
    url = f"/fhir/Task/{task}"
    assert client.patch(url, json=status_ops("received"), headers=as_facility(RECEIVER)).is_success
    client.patch(url, json=status_ops("received"), headers=as_facility(RECEIVER))  # no change
    client.patch(url, json=status_ops("accepted"), headers=as_facility(SENDER))  # refused
    found = [
        r
        for r in records(client.app.state.session_factory)  # type: ignore[attr-defined]
        if r["action"].startswith("referral.")
    ]
    assert [r["action"] for r in found] == ["referral.changed", "referral.refused"]
    assert f"Task/{task}/_history/2" in found[0]["body"]
    assert "accepted-by-receiver" in found[1]["body"]
    assert "张秀英" not in "".join(r["body"] for r in found)
