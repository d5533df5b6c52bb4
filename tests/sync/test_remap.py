"""adapter remap: a mapping change shows the expected diff by rule and path, and only the
changed resources get new versions and deliveries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import Resource
from adapter.store.outbox import list_deliveries
from tests.sync.support import ROOT, consortium_file, environment, lab_report, run_cli

RULE_FILE = Path("_shared/hl7v2/resources/observation.yaml")


def _versions(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        rows = session.execute(select(Resource.resource_type, Resource.id, Resource.version_id))
        return {f"{t}/{i}": v for t, i, v in rows}


def test_a_mapping_change_is_shown_then_stored_as_new_versions_of_the_changed_only(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    for entry in (Path(__file__).parent / "mappings").iterdir():
        (mappings / entry.name).symlink_to(entry)
    config = consortium_file(tmp_path, [], receiver="http://127.0.0.1:9/fhir")
    env = {**environment(database_url, config), "ADAPTER_MAPPINGS_DIR": str(mappings)}
    reports = []
    for number in (1, 2):
        path = tmp_path / f"r{number}.hl7"
        path.write_bytes(lab_report(number))
        reports.append(str(path))
    code, _ = run_cli(env, "ingest", *reports, "--source", "std-hl7v2", monkeypatch=monkeypatch)
    assert code == 0
    before = _versions(session_factory)
    with session_factory() as session:
        queued_before = list_deliveries(session, limit=1)[0]

    # the consortium decides lab Observations carry the category display in Chinese
    rule = mappings / RULE_FILE
    text = rule.read_text(encoding="utf-8")
    assert text.count("display: Laboratory") == 1
    rule.write_text(text.replace("display: Laboratory", "display: 检验"), encoding="utf-8")

    code, output = run_cli(
        env, "remap", "--source", "std-hl7v2", "--dry-run", "--json", monkeypatch=monkeypatch
    )
    assert code == 0, output
    plan = json.loads(output[output.index("{") :])
    assert plan["messages"] == 2 and plan["messages_changed"] == 2
    assert plan["resources_changed"] == 8  # 4 Observations per CBC report
    [row] = plan["summary"]
    assert row["path"] == "Observation.category.coding.display"
    assert row["change"] == "changed" and row["resources"] == 8
    assert row["rule"].endswith("OBX -> Observation") and "oru_r01" in row["rule"]
    assert {c["changed"][0] for c in plan["changes"]} == {
        "Observation.category[0].coding[0].display"
    }
    assert _versions(session_factory) == before  # a dry run stores nothing

    code, output = run_cli(env, "remap", "--source", "std-hl7v2", monkeypatch=monkeypatch)
    assert code == 0, output
    after = _versions(session_factory)
    every = {ref for ref in after if after[ref] != before[ref]}
    # each message's Provenance gets a new version naming the new versions it made
    trail = {ref for ref in every if ref.startswith("Provenance/")}
    changed = every - trail
    assert len(trail) == 2
    assert len(changed) == 8 and all(ref.startswith("Observation/") for ref in changed)
    assert all(after[ref] == before[ref] + 1 for ref in every)
    with session_factory() as session:
        queued = list_deliveries(session, limit=1000)[1]
        new_rows = [r for r in queued if r.version_id > 1]
        assert {f"{r.resource_type}/{r.resource_id}" for r in new_rows} == changed
        assert list_deliveries(session, limit=1)[0] == queued_before + 8
        assert session.scalar(select(func.count()).select_from(Resource)) == len(before)

    # nothing left to change: a second remap finds no difference
    code, output = run_cli(
        env, "remap", "--source", "std-hl7v2", "--dry-run", "--json", monkeypatch=monkeypatch
    )
    assert json.loads(output[output.index("{") :])["messages_changed"] == 0
