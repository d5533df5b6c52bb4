"""POST /ingest on a real ``adapter serve`` (uvicorn on loopback) records the channel and
the sender's address; /messages shows them (issue 9, item 2)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.live.server import LiveServer

CBC = (
    Path(__file__).resolve().parents[2]
    / "fixtures"
    / "hl7v2"
    / "oru"
    / "std-hl7v2"
    / "cbc-basic.hl7"
)


def test_http_ingest_records_channel_and_peer(database_url: str, tmp_path: Path) -> None:
    with LiveServer(database_url, tmp_path) as server:
        # bind the client to a known local port so the peer can be asserted exactly
        transport = httpx.HTTPTransport(local_address="127.0.0.1")
        with httpx.Client(transport=transport) as client:
            answer = client.post(
                server.url("/ingest"),
                content=CBC.read_bytes(),
                headers={"X-Source-System": "std-hl7v2", "Content-Type": "application/hl7-v2"},
            )
            assert answer.status_code == 202, answer.text
            message_id = answer.json()["message_id"]
            one = client.get(server.url(f"/messages/{message_id}")).json()
            [item] = client.get(server.url("/messages")).json()["items"]
    assert one["channel"] == item["channel"] == "http"
    host, _, port = one["peer"].rpartition(":")
    assert host == "127.0.0.1" and port.isdigit() and int(port) != server.port
    assert item["peer"] == one["peer"]
    assert one["content_type"] == "application/hl7-v2"
