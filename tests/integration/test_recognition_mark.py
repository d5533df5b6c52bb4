"""``adapter recognition mark``: results stored before the catalogue was configured get the
mark as new versions, delivered like any change; a second run changes nothing; a new
edition that drops a facility takes the mark away. On SQLite, and on PostgreSQL with
``-m db`` and ADAPTER_TEST_DATABASE_URL.

The results of tests/api/recognition_fixtures.py are stored straight into the store (not
through the pipeline's marking step): none carries a mark, as before a catalogue existed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from adapter.cli import app
from adapter.recognition.remark import marks_of
from adapter.settings import get_settings
from adapter.store.audit_log import AuditRecord
from adapter.store.models import Outbox, Resource
from tests.api.recognition_fixtures import seed

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


@pytest.fixture
def folder(
    database_url: str,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """The example consortium with its destinations enabled, and its catalogue beside it."""
    seed(session_factory)
    text = (FIXTURES / "consortium.yaml").read_text(encoding="utf-8")
    (tmp_path / "consortium.yaml").write_text(
        text.replace("enabled: false", "enabled: true"), encoding="utf-8"
    )
    shutil.copyfile(FIXTURES / "recognition.yaml", tmp_path / "recognition.yaml")
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_CONFIG", str(tmp_path / "consortium.yaml"))
    monkeypatch.setenv("ADAPTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ADAPTER_RECOGNITION_CATALOGUE", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run(*args: Any) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def state(factory: sessionmaker[Session]) -> dict[str, tuple[int, list[str]]]:
    """id -> (version, marks) of every stored result."""
    with factory() as session:
        rows = session.execute(
            select(Resource.id, Resource.version_id, Resource.body).where(
                Resource.resource_type.in_(("Observation", "DiagnosticReport"))
            )
        )
        return {rid: (version, marks_of(body)) for rid, version, body in rows}


def test_mark_gives_stored_results_their_mark_once(
    folder: Path, session_factory: sessionmaker[Session]
) -> None:
    before = state(session_factory)
    assert before and all(marks == [] for _, marks in before.values())
    # a dry run says what would change and stores nothing
    dry = run("recognition", "mark", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert state(session_factory) == before
    assert "would change" in dry.stdout
    done = run("recognition", "mark", "--batch", "3")  # several batches per type
    assert done.exit_code == 0, done.output
    after = state(session_factory)
    # recognisable when issued: 石桥's WBCs and serum glucose, the county's CT and HGB
    for rid in ("sq-wbc-new", "sq-wbc-old", "sq-wbc-p2", "sq-glu-ser", "ct-chest", "ch-hgb"):
        assert after[rid] == (2, ["HR"]), rid
    # not: cancelled, preliminary, fingertip blood, province item from 石桥, 柳河's lapsed
    # and failed assessments, a facility without qualifications
    for rid in ("sq-crp", "sq-glu", "sq-glu-poct", "sq-a1c", "lh-rbc", "lh-ua", "pc-plt"):
        assert after[rid] == (1, []), rid
    changed = sorted(rid for rid in after if after[rid] != before[rid])
    assert f"changed {len(changed)} ({len(changed)} marked, 0 unmarked)" in done.stdout
    assert "Observation:" in done.stderr and "examined" in done.stderr  # progress
    # the new versions are queued like any change: 石桥's go to the county hospital
    with session_factory() as session:
        queued = set(
            session.execute(select(Outbox.destination, Outbox.resource_id, Outbox.version_id)).all()
        )
        audited = session.scalars(
            select(AuditRecord.action).where(AuditRecord.action == "recognition.marked")
        ).all()
    assert ("county-hospital-fhir", "sq-wbc-new", 2) in queued
    assert ("shiqiao-fhir", "ct-chest", 2) in queued
    assert not {r for _, r, _ in queued} & {"sq-crp", "lh-rbc"}
    assert audited
    # a second run changes nothing
    again = run("recognition", "mark")
    assert again.exit_code == 0, again.output
    assert "changed 0 (0 marked, 0 unmarked); 0 deliveries queued" in again.stdout
    assert state(session_factory) == after


def test_a_new_edition_takes_the_mark_away(
    folder: Path, session_factory: sessionmaker[Session]
) -> None:
    assert run("recognition", "mark").exit_code == 0
    marked = state(session_factory)
    assert marked["sq-wbc-new"] == (2, ["HR"])
    # the next edition drops 石桥's qualifications
    catalogue = yaml.safe_load((folder / "recognition.yaml").read_text(encoding="utf-8"))
    catalogue["edition"] = "2027.1"
    catalogue["qualifications"] = [
        q for q in catalogue["qualifications"] if q["facility"] != "shiqiao-township-centre"
    ]
    (folder / "recognition.yaml").write_text(
        yaml.safe_dump(catalogue, allow_unicode=True), encoding="utf-8"
    )
    get_settings.cache_clear()
    # --since in the future: nothing is examined
    later = run("recognition", "mark", "--since", "2099-01-01")
    assert "0 results examined" in later.stdout
    done = run("recognition", "mark")
    assert done.exit_code == 0, done.output
    after = state(session_factory)
    for rid in ("sq-wbc-new", "sq-wbc-old", "sq-wbc-p2", "sq-glu-ser"):
        assert after[rid] == (3, []), rid
    assert after["ct-chest"] == marked["ct-chest"]  # the county keeps its
    assert "(0 marked, 4 unmarked)" in done.stdout


def test_the_generated_year_needs_no_marking(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    """The year is stored with the pipeline's marking step: the command agrees with it on
    every result (a dry run finds nothing to change)."""
    from datetime import UTC, datetime

    from adapter.recognition.remark import mark_stored
    from tests.integration.recognition_year import generate

    year = generate(session_factory, persons=60)
    run_ = mark_stored(
        session_factory, year.catalogue, year.consortium, now=datetime.now(UTC), dry_run=True
    )
    assert run_.examined >= year.results - 5  # every result (the Specimens are not)
    assert run_.changed == 0


def test_a_catalogue_that_does_not_mark_refuses(
    folder: Path, session_factory: sessionmaker[Session]
) -> None:
    before = state(session_factory)
    path = folder / "recognition.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("mark_results: true", "mark_results: false"),
        encoding="utf-8",
    )
    get_settings.cache_clear()
    refused = run("recognition", "mark")
    assert refused.exit_code == 1 and "mark_results: false" in refused.output
    assert state(session_factory) == before
