"""From an HL7 v2 message to the destination with the ``adapter`` command: ingest, then
``adapter worker --once``, ``adapter deliveries``, ``adapter replay``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from adapter.cli import app
from adapter.pipeline.receipt import Receipt
from adapter.runtime import build_runtime
from adapter.settings import PROJECT_ROOT, Settings, get_settings
from adapter.store.models import Outbox
from tests.integration.delivery_receiver import Receiver, outcome
from tests.integration.delivery_support import write_consortium
from tests.integration.test_delivery_faults import _adapter_command

ORU = PROJECT_ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "biochem-zones.hl7"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``adapter ...`` in a process of its own (the worker: signals, logging, locks)."""
    return subprocess.run(
        [*_adapter_command(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``cli(env, *args)``: the inspecting commands, run in this process."""
    runner = CliRunner()

    def invoke(env: dict[str, str], *args: str) -> Result:
        for name in ("ADAPTER_DATABASE_URL", "ADAPTER_CONFIG"):
            monkeypatch.setenv(name, env[name])
        get_settings.cache_clear()
        return runner.invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


def test_ingest_deliver_inspect_and_replay_from_the_command_line(
    database_url: str,
    session_factory: sessionmaker[Session],
    receiver: Receiver,
    tmp_path: Path,
    cli: Callable[..., Result],
) -> None:
    config = write_consortium(tmp_path / "consortium.yaml", receiver.base_url)
    runtime = build_runtime(Settings(database_url=database_url, config=config))
    try:
        result = runtime.pipeline.ingest(ORU.read_bytes(), Receipt("lis", "cli"))
    finally:
        runtime.close()
    assert result.accepted
    with session_factory() as session:
        queued = session.scalars(select(Outbox).order_by(Outbox.id)).all()
    assert [f"{r.resource_type}/{r.resource_id}" for r in queued] == result.resources
    observation = next(r for r in queued if r.resource_type == "Observation")
    refusal = outcome("code-invalid", "unknown LOINC code")
    receiver.rule = lambda t, i, body, n: (
        (422, {}, refusal) if i == observation.resource_id and n == 1 else None
    )

    env = {
        **os.environ,
        "ADAPTER_DATABASE_URL": database_url,
        "ADAPTER_CONFIG": str(config),
        "ADAPTER_LOG_LEVEL": "WARNING",
    }
    done = _run(env, "worker", "--once")
    assert done.returncode == 0, done.stderr
    assert f"{len(queued)} sent: {len(queued) - 1} delivered, 0 to retry, 1 dead" in done.stdout
    # one patient: every row went out in queue order (the refused one did not hold back
    # the rows behind it)
    assert [r.ref for r in receiver.requests] == result.resources

    dead = cli(env, "deliveries", "--state", "dead")
    assert dead.exit_code == 0, dead.output
    assert f"Observation/{observation.resource_id}" in dead.stdout and "1 of 1" in dead.stdout
    shown = cli(env, "deliveries", str(observation.id))
    assert "dead" in shown.stdout and "422" in shown.stdout and "unknown LOINC" in shown.stdout

    assert cli(env, "replay").exit_code == 2  # neither an id nor --destination
    replayed = cli(env, "replay", str(observation.id))
    assert replayed.exit_code == 0 and "queued again" in replayed.stdout
    again = cli(env, "replay", str(observation.id))
    assert again.exit_code == 1 and "already queued" in again.stderr
    assert _run(env, "worker", "--once").returncode == 0
    with session_factory() as session:
        states = set(session.scalars(select(Outbox.state)))
    assert states == {"delivered"}
    assert [r.ref for r in receiver.requests].count(f"Observation/{observation.resource_id}") == 2


def test_worker_refuses_an_unknown_destination(
    database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    config = write_consortium(tmp_path / "consortium.yaml", receiver.base_url)
    env = {**os.environ, "ADAPTER_DATABASE_URL": database_url, "ADAPTER_CONFIG": str(config)}
    refused = _run(env, "worker", "--once", "--destination", "nowhere")
    assert refused.returncode == 2 and "no destination 'nowhere'" in refused.stderr
