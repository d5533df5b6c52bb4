"""One start-up path (adapter.runtime.build_runtime) for ``adapter serve``, the commands and
the worker, each asking for what it needs: a broken mapping stops the commands that
translate, never the worker or the listings that help fix it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from adapter.cli import app
from adapter.pipeline.receipt import Receipt
from adapter.runtime import build_runtime
from adapter.settings import PROJECT_ROOT, Settings, get_settings
from tests.integration.delivery_receiver import Receiver
from tests.integration.delivery_support import write_consortium
from tests.integration.test_delivery_faults import _adapter_command

ORU = PROJECT_ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "biochem-zones.hl7"


@pytest.fixture
def adapter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``adapter(env, *args)``: an inspecting command, run in this process with these
    variables (the worker sets up logging: it runs in a process of its own)."""
    runner = CliRunner()

    def invoke(env: dict[str, str], *args: str) -> Result:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return runner.invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


def test_a_broken_mapping_stops_ingest_but_not_the_worker_or_the_listings(
    database_url: str, receiver: Receiver, tmp_path: Path, adapter: Callable[..., Result]
) -> None:
    config = write_consortium(tmp_path / "consortium.yaml", receiver.base_url)
    runtime = build_runtime(Settings(database_url=database_url, config=config))
    try:
        stored = runtime.pipeline.ingest(ORU.read_bytes(), Receipt("lis", "cli"))
    finally:
        runtime.close()
    broken = tmp_path / "mappings"
    (broken / "_shared").mkdir(parents=True)
    (broken / "_shared" / "broken.yaml").write_text("this: [is not a mapping\n")
    env = {
        "ADAPTER_DATABASE_URL": database_url,
        "ADAPTER_CONFIG": str(config),
        "ADAPTER_MAPPINGS_DIR": str(broken),
        "ADAPTER_LOG_LEVEL": "WARNING",
    }

    refused = adapter(env, "ingest", "--source", "lis", str(ORU))
    assert refused.exit_code == 2 and "cannot start" in refused.stderr

    listed = adapter(env, "messages")
    assert listed.exit_code == 0 and stored.message_id in listed.stdout
    delivered = subprocess.run(
        [*_adapter_command(), "worker", "--once"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert delivered.returncode == 0, delivered.stderr
    assert f"{len(stored.resources)} delivered" in delivered.stdout
    assert adapter(env, "deliveries", "--state", "delivered").exit_code == 0


def test_without_mappings_the_runtime_has_no_pipeline(database_url: str, tmp_path: Path) -> None:
    config = write_consortium(tmp_path / "consortium.yaml", "http://127.0.0.1:9")
    runtime = build_runtime(
        Settings(database_url=database_url, config=config),
        check_connectors=False,
        load_mappings=False,
    )
    try:
        with pytest.raises(RuntimeError, match="without its mappings"):
            runtime.pipeline  # noqa: B018
    finally:
        runtime.close()
