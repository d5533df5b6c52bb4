"""``adapter patients ...`` in this process on a real database: show, reviews, merge,
unmerge and the dry run of a rule change (nothing written, manual links kept)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from adapter.cli import app
from adapter.identity.index.resolve import index_patients
from adapter.identity.rules import rules_at
from adapter.settings import get_settings
from adapter.store.identity_tables import IdentityRecord

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def _patient(pid: str, card: str | None = None) -> dict:
    ids = [{"system": "urn:oid:2.16.156.10011.1.19", "value": card}] if card else []
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": ids,
        "name": [{"text": "赵敏"}],
        "gender": "female",
        "birthDate": "1990-02-02",
        "telecom": [{"system": "phone", "value": "13900000001"}],
    }


def test_merge_unmerge_and_rematch(
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    rules = rules_at(None)
    with session_factory.begin() as session:
        for pid, card in (("a", "JK1"), ("b", "JK1"), ("c", None)):
            index_patients(session, [_patient(pid, card)], facility_id="f", rules=rules, now=NOW)
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_CONFIG", str(ROOT / "fixtures" / "consortium.yaml"))
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> dict:
        result = runner.invoke(app, ["patients", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    try:
        with session_factory() as session:
            persons = dict(
                session.execute(select(IdentityRecord.patient_id, IdentityRecord.person_id)).all()
            )
        assert persons["a"] == persons["b"] != persons["c"]
        shown = run("show", "a")
        assert len(shown["records"]) == 2 and shown["records"][0]["name"] == "赵*"
        assert run("reviews")["total"] == 2  # c with a and with b: demographics only

        # a stricter rule version: the card key would need review; the dry run says so
        strict = tmp_path / "rules.yaml"
        strict.write_text("version: 2\nkind: matching-rules\ncard_key: {outcome: review}\n")
        report = run("rematch", "--rules", str(strict))
        assert (report["remove"], report["add"], report["toRuleVersion"]) == (1, 0, 2)
        with session_factory() as session:
            assert (
                dict(
                    session.execute(
                        select(IdentityRecord.patient_id, IdentityRecord.person_id)
                    ).all()
                )
                == persons
            )

        merged = run(
            "merge", f"Patient/{persons['a']}", persons["c"], "--actor", "li", "--reason", "same"
        )
        after = run("rematch", "--rules", str(strict))
        assert after["manualKept"] >= 1 and after["remove"] == 1  # a-b stays auto; c is manual
        run("unmerge", str(merged["merge"]), "--actor", "li")
        with session_factory() as session:
            assert (
                dict(
                    session.execute(
                        select(IdentityRecord.patient_id, IdentityRecord.person_id)
                    ).all()
                )
                == persons
            )
        failed = runner.invoke(app, ["patients", "unmerge", str(merged["merge"]), "--actor", "li"])
        assert failed.exit_code == 1 and "already undone" in failed.output
    finally:
        get_settings.cache_clear()
