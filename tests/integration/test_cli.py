"""The ``adapter`` command (typer) run in-process with CliRunner against the test database.

Settings come from ADAPTER_* environment variables, as in production; ``get_settings`` is
cached, so every test clears the cache before and after.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import Result
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from adapter.cli import app
from adapter.settings import get_settings
from adapter.store.models import InboundMessage, Resource

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
ORU = FIXTURES / "hl7v2" / "oru"
BAD = FIXTURES / "hl7v2" / "bad"
CBC = ORU / "std-hl7v2" / "cbc-basic.hl7"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _personal_data() -> list[str]:
    """Names, national ID numbers and phone numbers of every ORU fixture's patients."""
    found: list[str] = []
    for case in yaml.safe_load((ORU / "cases.yaml").read_text(encoding="utf-8")):
        expect = case["expect"]
        for patient in expect.get("patients") or [expect.get("patient") or {}]:
            ids = patient.get("national_id") or []
            found.extend(ids if isinstance(ids, list) else [ids])
            found.extend(str(patient[k]) for k in ("name", "phone") if patient.get(k))
    return sorted(set(found))


PERSONAL = _personal_data()


def _no_personal_data(output: str) -> None:
    leaked = [value for value in PERSONAL if value in output]
    assert not leaked, f"personal data in the output: {len(leaked)} values"


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_CONFIG", str(FIXTURES / "consortium.yaml"))
    monkeypatch.setenv("ADAPTER_MAPPINGS_DIR", str(ROOT / "mappings"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def run(*args: Any) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    _no_personal_data(result.output)
    return result


def _message_ids(output: str) -> list[str]:
    return re.findall(rf"message ({UUID.pattern})", output)


def _bad_date() -> Path:
    """A message the adapter quarantines: OBX[2]-14 is 20261345 (month 13)."""
    return BAD / "obx14-bad-date.hl7"


# -- ingest, messages, show ---------------------------------------------------------------------


def test_ingest_prints_status_and_resource_counts(
    env: pytest.MonkeyPatch, session_factory: sessionmaker[Session]
) -> None:
    two = ORU / "std-hl7v2" / "two-orders.hl7"
    result = run("ingest", CBC, two, "--source", "std-hl7v2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        line.startswith(f"{CBC}: processed -> ")
        and "4 Observation" in line
        and "1 Patient" in line
        and "1 DiagnosticReport" in line
        for line in lines
    )
    assert any(
        line.startswith(f"{two}: processed") and "2 DiagnosticReport" in line for line in lines
    )
    ids = _message_ids(result.output)
    assert len(ids) == 2
    with session_factory() as session:
        stored = session.scalars(select(InboundMessage.id)).all()
        assert sorted(stored) == sorted(ids)
        assert session.scalar(select(func.count()).select_from(Resource)) > 10

    again = run("ingest", CBC, "--source", "std-hl7v2")
    assert again.exit_code == 0
    assert "(already received)" in again.output
    assert _message_ids(again.output) == ids[:1]


def test_ingest_exits_1_when_a_file_is_quarantined(env: pytest.MonkeyPatch) -> None:
    result = run("ingest", CBC, _bad_date(), "--source", "std-hl7v2")
    assert result.exit_code == 1, result.output
    assert f"{CBC}: processed" in result.output
    assert f"{_bad_date()}: quarantined -> nothing" in result.output
    assert "error at OBX[2]-14:" in result.output


def test_ingest_refuses_an_unknown_source_and_a_missing_file(env: pytest.MonkeyPatch) -> None:
    unknown = run("ingest", CBC, "--source", "nobody")
    assert unknown.exit_code == 1
    assert "unknown source system 'nobody'" in unknown.output
    missing = run("ingest", FIXTURES / "no-such.hl7", "--source", "std-hl7v2")
    assert missing.exit_code == 2  # typer: the argument must name an existing file


def test_messages_lists_by_status(env: pytest.MonkeyPatch) -> None:
    ids = _message_ids(run("ingest", CBC, _bad_date(), "--source", "std-hl7v2").output)
    good, bad = ids
    quarantined = run("messages", "--status", "quarantined")
    assert quarantined.exit_code == 0
    assert bad in quarantined.output and good not in quarantined.output
    row = next(line for line in quarantined.output.splitlines() if bad in line)
    assert "std-hl7v2" in row and "quarantined" in row
    everything = run("messages")
    assert good in everything.output and bad in everything.output


def test_show_prints_issues_with_locations_and_resources(env: pytest.MonkeyPatch) -> None:
    good, bad = _message_ids(run("ingest", CBC, _bad_date(), "--source", "std-hl7v2").output)
    shown = run("show", bad)
    assert shown.exit_code == 0
    assert f"message {bad} from std-hl7v2" in shown.output
    assert "status quarantined" in shown.output
    assert re.search(r"error at OBX\[2\]-14: .*20261345", shown.output)
    assert "->" not in shown.output
    shown = run("show", good)
    assert "status processed" in shown.output
    refs = re.findall(r"-> (\w+)/[0-9a-f-]{36}", shown.output)
    assert sorted(set(refs)) == [
        "DiagnosticReport",
        "Observation",
        "Organization",
        "Patient",
        "Specimen",
    ]
    assert refs.count("Observation") == 4
    missing = run("show", "00000000-0000-0000-0000-000000000000")
    assert missing.exit_code == 1
    assert "no message" in missing.output


# -- reprocess ----------------------------------------------------------------------------------


def _fixable(tmp_path: Path) -> Path:
    """An admission with patient class Q, unknown to the shared code table (an unknown
    result status is no quarantine: it is `unknown` with a warning)."""
    path = tmp_path / "class-q.hl7"
    admit = FIXTURES / "hl7v2" / "adt" / "county-his" / "a01-admit.hl7"
    path.write_bytes(admit.read_bytes().replace(b"PV1|1|I|", b"PV1|1|Q|", 1))
    return path


def _fixed_mappings(tmp_path: Path) -> Path:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    table = mappings / "_shared" / "concept-maps" / "patient-class.yaml"
    text = table.read_text(encoding="utf-8")
    known = "  I: {code: IMP, display: inpatient encounter}\n"
    assert known in text
    table.write_text(text.replace(known, known + known.replace("I:", "Q:")), encoding="utf-8")
    return mappings


def test_reprocess_one_message_and_by_status(
    env: pytest.MonkeyPatch, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    first = run("ingest", _fixable(tmp_path), "--source", "county-his")
    second = run("ingest", _bad_date(), "--source", "std-hl7v2")
    [fixable], [hopeless] = _message_ids(first.output), _message_ids(second.output)
    assert "quarantined" in first.output and "quarantined" in second.output

    # no fix yet: still quarantined, exit 1
    same = run("reprocess", fixable)
    assert same.exit_code == 1, same.output
    assert f"{fixable}: quarantined" in same.output
    assert "1 reprocessed, 1 still failing" in same.output

    # the code table fixed: --status quarantined takes both, one goes through
    env.setenv("ADAPTER_MAPPINGS_DIR", str(_fixed_mappings(tmp_path)))
    get_settings.cache_clear()
    fixed = run("reprocess", "--status", "quarantined")
    assert fixed.exit_code == 1, fixed.output  # obx14-bad-date.hl7 is still wrong
    assert re.search(rf"{fixable}: processed(-with-warnings)? -> .*1 Encounter", fixed.output)
    assert f"{hopeless}: quarantined" in fixed.output
    assert "2 reprocessed, 1 still failing" in fixed.output
    with session_factory() as session:
        attempts = dict(session.execute(select(InboundMessage.id, InboundMessage.attempts)).all())
    assert attempts == {fixable: 3, hopeless: 2}

    assert run("reprocess", "--status", "quarantined").exit_code == 1
    neither = run("reprocess")
    assert neither.exit_code == 2
    assert "give a message id or --status" in neither.output


# -- demo ----------------------------------------------------------------------------------------


def test_demo_ingests_the_fixtures_and_prints_each_message(
    env: pytest.MonkeyPatch, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    env.chdir(tmp_path)  # the deliveries go to ./out/ (the whole story: test_demo.py)
    result = run("demo")
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(ORU).as_posix() for p in ORU.glob("*/*.hl7"))
    assert len(files) >= 20
    printed = re.findall(
        r"^(\S+\.hl7): (processed|processed-with-warnings) -> ", result.output, re.MULTILINE
    )
    assert sorted(name for name, _ in printed) == files
    assert f"{len(files)} messages:" in result.output
    with session_factory() as session:  # the lab results and the referral story's 7
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == len(files) + 7
    # every message printed can be shown, and nothing shown names a patient
    for message_id in _message_ids(result.output):
        assert run("show", message_id).exit_code == 0


def test_demo_never_prints_the_database_password(
    env: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("SQLite URLs carry no password")
    # trust authentication accepts any password
    env.setenv(
        "ADAPTER_DATABASE_URL", url.set(password="s3cret-pw").render_as_string(hide_password=False)
    )
    get_settings.cache_clear()
    env.chdir(tmp_path)
    result = run("demo")
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    assert "database: postgresql+psycopg://postgres:***@" in result.output


# -- mappings check ---------------------------------------------------------------------------


def test_mappings_check_passes_on_the_project_mappings(env: pytest.MonkeyPatch) -> None:
    result = run("mappings", "check")
    assert result.exit_code == 0, result.output
    assert re.search(r"^_shared: \d+ files ok$", result.output, re.MULTILINE)


def test_mappings_check_names_file_and_line_of_a_broken_copy(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    broken = mappings / "_shared" / "hl7v2" / "resources" / "lab-organization.yaml"
    lines = broken.read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, 1) if line.startswith("  name: "))
    lines[number - 1] = "  name: =@facility.name(\n"
    broken.write_text("".join(lines), encoding="utf-8")

    result = run("mappings", "check", mappings)
    assert result.exit_code == 1, result.output
    # once per mapping folder (each lays its rules over _shared), not again per facility
    folders = [p for p in mappings.iterdir() if p.is_dir() and p.name != "facilities"]
    assert result.output.count(f"{broken}:{number}:") == len(folders)
    # through ADAPTER_MAPPINGS_DIR as well
    env.setenv("ADAPTER_MAPPINGS_DIR", str(mappings))
    get_settings.cache_clear()
    assert run("mappings", "check").exit_code == 1
    # a command that needs the pipeline refuses to start ...
    refused = run("ingest", CBC, "--source", "std-hl7v2")
    assert refused.exit_code == 2
    assert f"{broken}:{number}:" in refused.output
    # ... while the stored messages can still be listed and read, to see what to fix
    assert run("messages", "--status", "quarantined").exit_code == 0


# -- a bad consortium file --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (FIXTURES / "consortium-bad").glob("*.yaml"))
)
def test_a_bad_consortium_file_stops_with_exit_2_naming_file_and_line(
    name: str, env: pytest.MonkeyPatch
) -> None:
    path = FIXTURES / "consortium-bad" / name
    env.setenv("ADAPTER_CONFIG", str(path))
    get_settings.cache_clear()
    for args in (["messages"], ["ingest", CBC, "--source", "std-hl7v2"], ["demo"]):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert re.search(rf"{re.escape(str(path))}:\d+", result.output), result.output


def test_bad_setting_and_unreachable_database_are_one_line_errors(monkeypatch) -> None:
    """No traceback: a mistyped ADAPTER_* value or a database that is not there."""
    from typer.testing import CliRunner

    from adapter.cli import app
    from adapter.settings import get_settings

    runner = CliRunner()
    monkeypatch.setenv("ADAPTER_MAX_MESSAGE_BYTES", "lots")
    get_settings.cache_clear()
    result = runner.invoke(app, ["messages"])
    assert result.exit_code == 2
    assert "ADAPTER_MAX_MESSAGE_BYTES" in result.output
    assert "Traceback" not in result.output
    monkeypatch.delenv("ADAPTER_MAX_MESSAGE_BYTES")
    monkeypatch.setenv("ADAPTER_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    result = runner.invoke(app, ["ingest", "--source", "std-hl7v2", __file__])
    assert result.exit_code == 2
    assert "cannot be used" in result.output
    get_settings.cache_clear()


def test_demo_with_a_missing_folder_says_so(env: pytest.MonkeyPatch) -> None:
    # the test database: the default (./adapter.db) would be written in the working folder
    result = CliRunner().invoke(app, ["demo", "--folder", "/no/such/folder"])
    assert result.exit_code == 2
    assert "is not a folder" in result.output


def test_store_compact_compresses_bodies_stored_before_0017(env: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text

    from adapter.store import read_resource, save_resources
    from adapter.store.body_codec import is_frame
    from adapter.store.body_stamps import STRIPPED

    factory = sessionmaker(get_settings_engine())
    body = {"resourceType": "Patient", "id": "plain", "gender": "female"}
    with factory.begin() as session:
        save_resources(session, [body], message_id=None, now=datetime.now(UTC))
        # as the store wrote it before migration 0017: plain JSON text
        stored = session.execute(text("SELECT body FROM resource WHERE id = 'plain'")).scalar_one()
        plain = orjson.dumps(read_resource(session, "Patient", "plain"))
        sqlite = session.get_bind().dialect.name == "sqlite"
        session.execute(
            text("UPDATE resource SET body = :b WHERE id = 'plain'"),
            {"b": plain.decode() if sqlite else plain},
        )
    # saved without its stamps since 0052 (decision 0128): the marker, then a frame
    assert stored[0] == STRIPPED and is_frame(stored[1:])
    result = run("store", "compact", "--batch", "1")
    assert result.exit_code == 0, result.output
    assert "resource: 1 bodies compressed" in result.output
    with factory() as session:
        stored = session.execute(text("SELECT body FROM resource WHERE id = 'plain'")).scalar_one()
        assert is_frame(stored)
        assert orjson.dumps(read_resource(session, "Patient", "plain")) == plain


def test_reindex_rebuilds_rows_of_resources_written_before(env: pytest.MonkeyPatch) -> None:
    from adapter.store import save_resources
    from adapter.store.models import SearchIndex, SearchParam
    from adapter.store.search_tokens import index_rows

    factory = sessionmaker(get_settings_engine())
    with factory.begin() as session:
        save_resources(
            session,
            [{"resourceType": "Patient", "id": "old", "meta": {"tag": [{"code": "vip"}]}}],
            message_id=None,
            now=datetime.now(UTC),
        )
        # as an older version of the adapter left it: no _tag rows (PostgreSQL: no token
        # array either, decision 0103)
        session.execute(delete(SearchIndex).where(SearchIndex.param == "_tag"))
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("UPDATE search_terms SET toks = '{}'"))
    result = run("reindex", "--type", "Patient")
    assert result.exit_code == 0, result.output
    assert "reindexed" in result.output
    with factory() as session:
        si, sp = index_rows(), SearchParam.__table__
        rows = session.scalars(
            select(si.c.code).join(sp, sp.c.param_id == si.c.param_id).where(sp.c.param == "_tag")
        ).all()
    assert rows == ["vip"]


def get_settings_engine():
    from adapter.store import make_engine

    return make_engine(get_settings().database_url)
