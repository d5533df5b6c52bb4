"""What the sync tests share: lab reports made from one fixture with their own numbers, a
consortium file with a ``sync:`` part, and running ``adapter sync`` (in process or as a
real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from adapter.cli import app
from adapter.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = (ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7").read_bytes()
FACILITY = "qingshan-county-hospital"
SOURCE_SYSTEM = "std-hl7v2"


def lab_report(number: int, *, wbc: str = "11.2") -> bytes:
    """A CBC report ORU^R01 with report number L<number>, slip SQ<number>."""
    text = TEMPLATE.decode("utf-8")
    text = text.replace("L2611200015", f"L{number:09d}").replace("SQ2611200015", f"SQ{number:09d}")
    text = text.replace("QSLIS202611200001", f"QSLIS{number:012d}")
    text = text.replace("|11.2|", f"|{wbc}|")
    return text.encode("utf-8")


def report_key(number: int) -> str:
    return f"L{number:09d}"


FHIR_SOURCE = "county-fhir-json"  # lab Observations from a FHIR server (tests/sync/mappings)
ROW_SOURCE = "county-lis-rows"  # a LIS view's rows as documents (tests/sync/mappings/view-lab)


def mappings_dir(tmp: Path) -> Path:
    """The project's mappings with the sync tests' fhir-lab folder beside them."""
    folder = tmp / "mappings"
    folder.mkdir()
    for entry in (ROOT / "mappings").iterdir():
        (folder / entry.name).symlink_to(entry)
    for entry in (Path(__file__).parent / "mappings").iterdir():
        (folder / entry.name).symlink_to(entry)
    return folder


def consortium_file(
    tmp: Path, sources: list[dict[str, Any]], *, receiver: str | None = None, **sync: Any
) -> Path:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    data["facilities"][0]["sources"] += [
        {"id": FHIR_SOURCE, "format": "json", "mapping": "fhir-lab"},
        {"id": ROW_SOURCE, "format": "json", "mapping": "view-lab"},
    ]
    if receiver is not None:
        hospital = data["facilities"][0]
        for destination in hospital["destinations"]:
            if destination["id"] == "county-hospital-fhir":
                destination["enabled"] = True
                destination["settings"]["base_url"] = receiver
                destination["retry"]["initial_backoff_seconds"] = 0.05
        data["routes"] = [
            {
                "from": [FACILITY],
                "to": ["county-hospital-fhir"],
                "resource_types": ["DiagnosticReport", "Observation", "Specimen", "Patient"],
            }
        ]
    else:
        data["routes"] = []
    data["sync"] = {"sources": sources, **sync}
    path = tmp / "consortium.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def environment(database_url: str, config: Path) -> dict[str, str]:
    mappings = config.parent / "mappings"
    if not mappings.exists():
        mappings_dir(config.parent)
    return {
        "ADAPTER_DATABASE_URL": database_url,
        "ADAPTER_CONFIG": str(config),
        "ADAPTER_MAPPINGS_DIR": str(mappings),
    }


def run_cli(env: dict[str, str], *args: str, monkeypatch: Any) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def sync_json(env: dict[str, str], *args: str, monkeypatch: Any) -> tuple[int, dict[str, Any]]:
    code, output = run_cli(env, "sync", "--json", *args, monkeypatch=monkeypatch)
    assert "{" in output, output
    start = output.index("{")
    # raw_decode: log lines of `--jobs` children may follow the report in the mixed output
    return code, json.JSONDecoder().raw_decode(output, start)[0]


def subprocess_env(env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    return {**clean, **env, "PYTHONPATH": str(ROOT)}


def start_sync(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "adapter.cli", "sync", "--json", *args],
        env=subprocess_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


def stable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs between two runs of the same night (ids, timings)."""
    return {k: v for k, v in report.items() if k != "run"}
