"""The live-server helper itself: a real ``adapter serve`` answers over TCP."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.live.server import LiveServer


def test_live_server_answers_health_and_fhir(database_url: str, tmp_path: Path) -> None:
    with LiveServer(database_url, tmp_path) as server:
        assert httpx.get(server.url("/health")).status_code == 200
        metadata = httpx.get(server.url("/fhir/metadata"))
        assert metadata.status_code == 200
        assert metadata.json()["resourceType"] == "CapabilityStatement"
    assert server.process is not None and server.process.returncode is not None
