"""Raw bytes changed in the database after receipt no longer match the sha256 taken then:
they are neither served (GET /raw) nor reprocessed (HTTP, CLI), each refusal names the
message and says why, and the error log carries ids and digests only."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from adapter.store.models import InboundMessage
from tests.integration import test_cli
from tests.integration.test_cli import CBC, ORU, run

env = test_cli.env  # the CLI tests' fixture: ADAPTER_* settings for the test database
EDITED_NAME = "篡改"  # written into PID-5 by the "edit"


def _ingest(client: TestClient, path: Path) -> str:
    response = client.post(
        "/ingest",
        content=path.read_bytes(),
        headers={"X-Source-System": "std-hl7v2", "Content-Type": "application/hl7-v2"},
    )
    assert response.status_code == 202, response.text
    return response.json()["message_id"]


def _edit_in_database(engine: Engine, message_id: str) -> None:
    """What someone with database access might do: change the stored bytes in place."""
    with engine.begin() as connection:
        raw = (
            connection.execute(
                InboundMessage.__table__.select().where(InboundMessage.id == message_id)
            )
            .one()
            ._mapping["raw"]
        )
        edited = bytes(raw).replace("张^伟".encode(), EDITED_NAME.encode() + b"^x", 1)
        assert edited != bytes(raw)
        connection.execute(
            update(InboundMessage).where(InboundMessage.id == message_id).values(raw=edited)
        )


def _refusal(response, message_id: str) -> None:
    assert response.status_code == 409, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    text = outcome["issue"][0]["diagnostics"]
    assert message_id in text
    assert "no longer match their sha256" in text
    assert EDITED_NAME not in response.text


def test_edited_bytes_are_not_served_nor_reprocessed_over_http(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    message_id = _ingest(client, CBC)
    other_id = _ingest(client, ORU / "std-hl7v2" / "two-orders.hl7")
    assert client.get(f"/messages/{message_id}/raw").status_code == 200
    _edit_in_database(engine, message_id)

    with caplog.at_level(logging.ERROR):
        _refusal(client.get(f"/messages/{message_id}/raw"), message_id)
        _refusal(client.post(f"/messages/{message_id}/reprocess"), message_id)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all(message_id in r.getMessage() for r in errors)
    assert not any(EDITED_NAME in r.getMessage() for r in caplog.records)
    assert not any("430999196803151231" in r.getMessage() for r in caplog.records)

    # the message itself is untouched: same status, one processing only
    shown = client.get(f"/messages/{message_id}").json()
    assert shown["status"] == "processed" and shown["attempts"] == 1

    # reprocessing by status refuses the altered one and still does the others
    batch = client.post("/messages/reprocess", params={"status": "processed"})
    assert batch.status_code == 200
    items = {i["message_id"]: i for i in batch.json()["items"]}
    assert items[message_id]["status"] == "refused"
    assert "sha256" in items[message_id]["error"]
    assert items[other_id]["status"] == "processed"
    assert client.get(f"/messages/{other_id}/raw").status_code == 200


def test_cli_reprocess_refuses_edited_bytes(
    env: pytest.MonkeyPatch, engine: Engine, client: TestClient
) -> None:
    message_id = _ingest(client, CBC)
    _edit_in_database(engine, message_id)
    result = run("reprocess", message_id)
    assert result.exit_code == 1, result.output
    assert f"{message_id}: message {message_id}: the stored bytes no longer match" in (
        result.output
    )
    assert "1 reprocessed, 1 still failing" in result.output


def test_mllp_forwarding_refuses_edited_bytes(mllp_peer, session_factory, engine: Engine) -> None:
    from adapter.errors import FatalDeliveryError
    from tests.integration.connector_helpers import items, observation
    from tests.integration.test_connectors_mllp import _mllp, _store

    message_id = _store(session_factory, CBC.read_bytes())
    _edit_in_database(engine, message_id)
    dest = _mllp(mllp_peer, session_factory)
    try:
        [result] = dest.send(items(observation("o1"), message_id=message_id))
    finally:
        dest.close()
    assert not result.ok and isinstance(result.error, FatalDeliveryError)
    assert "no longer match their sha256" in result.error.message
    assert mllp_peer.received == []  # nothing altered went out
