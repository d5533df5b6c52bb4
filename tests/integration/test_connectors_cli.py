"""``adapter connectors check``, ``adapter poll`` and ``adapter listen`` against real peers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from adapter.cli import app
from adapter.connectors.hl7_ack import read_ack
from adapter.connectors.mllp_framing import END, START, FrameReader
from adapter.settings import get_settings
from tests.peers.fault_server import FaultServer
from tests.peers.mllp_peer import MllpPeer

ROOT = Path(__file__).resolve().parents[2]
CBC = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7"


def _write_consortium(
    path: Path,
    *,
    destinations: list[dict[str, Any]],
    connectors: dict[str, dict[str, Any]] | None = None,
) -> Path:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    county = data["facilities"][0]
    county["destinations"] = destinations
    for source in county["sources"]:
        if connectors and source["id"] in connectors:
            source["connector"] = connectors[source["id"]]
    for facility in data["facilities"][1:]:
        facility["destinations"] = []
    data["routes"] = []
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def env(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_MAPPINGS_DIR", str(ROOT / "mappings"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _run(*args: str) -> Any:
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def _table(output: str) -> dict[str, str]:
    """The check table's rows by name (log lines around it are skipped)."""
    lines = output.splitlines()
    start = next(
        n
        for n, line in enumerate(lines)
        if line.split() == ["name", "kind", "reachable", "latency", "error"]
    )
    return {line.split()[0]: line for line in lines[start + 1 :] if line.strip()}


def test_connectors_check_prints_every_endpoint(
    env: pytest.MonkeyPatch, tmp_path: Path, fault_server: FaultServer, mllp_peer: MllpPeer
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    config = _write_consortium(
        tmp_path / "consortium.yaml",
        destinations=[
            {
                "id": "hospital-fhir",
                "kind": "fhir",
                "settings": {"base_url": fault_server.base_url},
            },
            {
                "id": "lis-mllp",
                "kind": "mllp",
                "settings": {"host": mllp_peer.host, "port": mllp_peer.port},
            },
            {"id": "drop", "kind": "file", "settings": {"path": str(outbox)}},
            {
                "id": "old-server",
                "kind": "fhir",
                "enabled": False,
                "settings": {"base_url": "http://127.0.0.1:9/fhir"},
            },
        ],
        connectors={"county-lis": {"kind": "file", "path": str(tmp_path / "inbox")}},
    )
    env.setenv("ADAPTER_CONFIG", str(config))
    result = _run("connectors", "check")
    assert result.exit_code == 1, result.output  # the file source has no inbox folder yet
    rows = _table(result.output)
    assert rows["hospital-fhir"].split()[1:3] == ["fhir", "yes"]
    assert rows["lis-mllp"].split()[1:3] == ["mllp", "yes"]
    assert rows["drop"].split()[1:3] == ["file", "yes"]
    assert "(disabled)" in rows["old-server"] and "Connection refused" in rows["old-server"]
    assert rows["county-lis"].split()[1:3] == ["file-source", "no"]
    assert "no folder" in rows["county-lis"]

    (tmp_path / "inbox").mkdir()
    result = _run("connectors", "check")  # a disabled destination does not count
    assert result.exit_code == 0, result.output
    assert _table(result.output)["county-lis"].split()[1:3] == ["file-source", "yes"]

    as_json = [
        json.loads(line)
        for line in _run("connectors", "check", "--json").output.splitlines()
        if line.startswith("{")
    ]
    assert {r["name"]: r["reachable"] for r in as_json}["hospital-fhir"] is True
    assert set(as_json[0]) == {"name", "kind", "reachable", "latency_ms", "error", "enabled"}

    fault_server.down()
    down = _run("connectors", "check")
    assert down.exit_code == 1
    assert "hospital-fhir" in down.output


def test_connectors_check_names_a_bad_setting(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = _write_consortium(
        tmp_path / "consortium.yaml",
        destinations=[
            {
                "id": "hospital-fhir",
                "kind": "fhir",
                "settings": {"base_url": "http://127.0.0.1:9/fhir", "timeout": 5},
            }
        ],
    )
    env.setenv("ADAPTER_CONFIG", str(config))
    result = _run("connectors", "check")
    assert result.exit_code == 2
    assert "destinations.hospital-fhir.settings.timeout" in result.output
    assert "unknown setting" in result.output


def test_poll_once_ingests_a_file_drop(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "cbc.hl7").write_bytes(CBC.read_bytes())
    config = _write_consortium(
        tmp_path / "consortium.yaml",
        destinations=[],
        connectors={"std-hl7v2": {"kind": "file", "path": str(inbox), "min_age_seconds": 0}},
    )
    env.setenv("ADAPTER_CONFIG", str(config))
    result = _run("poll", "--once")
    assert result.exit_code == 0, result.output
    assert "std-hl7v2: 1 read, 1 stored" in result.output
    assert (inbox / "done" / "cbc.hl7").is_file()
    assert _run("poll", "--once", "--source", "county-lis").exit_code == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_listen_acknowledges_after_storing_and_stops_on_sigterm(
    env: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> None:
    port = _free_port()
    config = _write_consortium(
        tmp_path / "consortium.yaml",
        destinations=[],
        connectors={"std-hl7v2": {"kind": "mllp", "host": "127.0.0.1", "port": port}},
    )
    environment = {
        **os.environ,
        "ADAPTER_CONFIG": str(config),
        "ADAPTER_DATABASE_URL": database_url,
        "ADAPTER_MAPPINGS_DIR": str(ROOT / "mappings"),
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from adapter.cli import app; app()", "listen"],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "the listener did not start"
                time.sleep(0.1)
        with sock:
            sock.settimeout(30)
            sock.sendall(START + CBC.read_bytes() + END)
            reader, frames = FrameReader(1_000_000), []
            while not frames:
                frames = reader.feed(sock.recv(65536))
        ack = read_ack(frames[0])
        assert (ack.code, ack.control_id) == ("AA", "QSLIS202611200001")
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert f"std-hl7v2: listening on 127.0.0.1:{port}" in output


def test_validate_connectors_stops_on_the_first_bad_setting(tmp_path: Path) -> None:
    from adapter.consortium import load_consortium
    from adapter.errors import ConfigError
    from adapter.runtime import validate_connectors

    good = _write_consortium(
        tmp_path / "good.yaml",
        destinations=[{"id": "drop", "kind": "file", "settings": {"path": str(tmp_path)}}],
        connectors={"county-lis": {"kind": "mllp", "port": 2575}},
    )
    validate_connectors(load_consortium(good))
    bad = _write_consortium(
        tmp_path / "bad.yaml",
        destinations=[],
        connectors={
            "county-lis": {
                "kind": "fhir-pull",
                "base_url": "http://x/fhir",
                "resource_types": ["Patient"],
                "auth": {"type": "bearer"},
            }
        },
    )
    with pytest.raises(ConfigError) as caught:
        validate_connectors(load_consortium(bad))
    assert caught.value.key == "sources.county-lis.connector.auth.token"
