"""One Receipt for every way in (issue 9, item 2): each way a document comes in stores how
it came (channel) and from where (peer) on its inbound message row, through the real
thing: an MLLP socket, a file-drop folder, a FHIR server pulled over HTTP, the CLI; and
``/messages`` shows them. HTTP ``POST /ingest`` on a real server: tests/live/test_receipt_http.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from adapter.cli import app as cli_app
from adapter.connectors.mllp_framing import END, START, FrameReader
from adapter.inbound.poller import poll_once
from adapter.settings import get_settings
from adapter.store.models import InboundMessage
from tests.integration.connector_helpers import example_pipeline
from tests.integration.test_connectors_fhir_pull import _setup as fhir_pull_setup
from tests.integration.test_connectors_file import _source as file_source
from tests.integration.test_connectors_mllp import _listener
from tests.peers.fault_server import Answer, FaultServer

ROOT = Path(__file__).resolve().parents[2]
CBC = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7"
ID = "110101199003077777"  # national-ID-shaped, in a file name


def _rows(factory: sessionmaker[Session]) -> list[InboundMessage]:
    with factory() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.received_at)))


def test_mllp_stores_the_channel_and_the_senders_address(
    session_factory: sessionmaker[Session],
) -> None:
    pipeline = example_pipeline(session_factory)
    listener = _listener(pipeline)
    port = listener.start(pipeline)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            local_port = sock.getsockname()[1]
            sock.sendall(START + CBC.read_bytes() + END)
            reader = FrameReader(1_000_000)
            while not reader.feed(sock.recv(65536)):
                pass
    finally:
        listener.stop()
    [row] = _rows(session_factory)
    assert (row.channel, row.peer) == ("mllp", f"127.0.0.1:{local_port}")
    assert row.content_type == "x-application/hl7-v2+er7"
    assert row.status == "processed"


def test_file_drop_stores_the_channel_and_the_file_name_masked(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "cbc-basic.hl7").write_bytes(CBC.read_bytes())
    # a file named after the patient: the national ID must not be listed
    (inbox / f"{ID}.hl7").write_bytes(CBC.read_bytes().replace(b"QSLIS202611200001", b"X2"))
    source = file_source(inbox)
    try:
        summary = poll_once(source, example_pipeline(session_factory))
    finally:
        source.close()
    assert summary.stored == 2
    peers = sorted((r.channel, r.peer) for r in _rows(session_factory))
    assert peers == [("file-drop", "[REDACTED-ID].hl7"), ("file-drop", "cbc-basic.hl7")]


def test_fhir_pull_stores_the_resource_url_without_credentials(
    fault_server: FaultServer, session_factory: sessionmaker[Session]
) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"lastUpdated": "2026-11-20T00:00:00Z"},
    }
    fault_server.default = Answer(200, body={"resourceType": "Bundle", "type": "searchset"})
    fault_server.plan(
        Answer(200, body={"resourceType": "Bundle", "entry": [{"resource": patient}]})
    )
    base = fault_server.base_url.replace("http://", "http://puller:s3cret-pw@")
    source, pipeline = fhir_pull_setup(base, session_factory, resource_types=["Patient"])
    try:
        summary = poll_once(source, pipeline)
    finally:
        source.close()
    assert summary.read == 1 and summary.error is None, summary  # kept (stored or not)
    [row] = _rows(session_factory)
    assert row.channel == "fhir-pull"
    assert row.peer == f"{fault_server.base_url}/Patient/p1"
    assert "s3cret" not in row.peer and "puller" not in row.peer


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_CONFIG", str(ROOT / "fixtures" / "consortium.yaml"))
    monkeypatch.setenv("ADAPTER_MAPPINGS_DIR", str(ROOT / "mappings"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_cli_ingest_stores_the_file_name_and_messages_lists_channel_and_peer(
    cli_env: pytest.MonkeyPatch, session_factory: sessionmaker[Session], client: TestClient
) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["ingest", str(CBC), "--source", "std-hl7v2", "--content-type", "application/hl7-v2"],
    )
    assert result.exit_code == 0, result.output
    [row] = _rows(session_factory)
    assert (row.channel, row.peer, row.content_type) == (
        "cli",
        "cbc-basic.hl7",
        "application/hl7-v2",
    )

    listing = CliRunner().invoke(cli_app, ["messages"])
    assert listing.exit_code == 0, listing.output
    header, line = listing.output.splitlines()[:2]
    assert "channel" in header and header.rstrip().endswith("peer")
    assert line.split()[4] == "cli" and line.rstrip().endswith("cbc-basic.hl7")
    shown = CliRunner().invoke(cli_app, ["show", row.id])
    assert "via cli from cbc-basic.hl7" in shown.output

    # the HTTP API shows them too, in the list and for one message
    [item] = client.get("/messages").json()["items"]
    assert (item["channel"], item["peer"]) == ("cli", "cbc-basic.hl7")
    one = client.get(f"/messages/{row.id}").json()
    assert (one["channel"], one["peer"]) == ("cli", "cbc-basic.hl7")


def test_reprocess_keeps_how_the_message_came_in(
    cli_env: pytest.MonkeyPatch, session_factory: sessionmaker[Session]
) -> None:
    CliRunner().invoke(cli_app, ["ingest", str(CBC), "--source", "std-hl7v2"])
    [row] = _rows(session_factory)
    result = CliRunner().invoke(cli_app, ["reprocess", row.id])
    assert result.exit_code == 0, result.output
    [again] = _rows(session_factory)
    assert (again.channel, again.peer, again.attempts) == ("cli", "cbc-basic.hl7", 2)
