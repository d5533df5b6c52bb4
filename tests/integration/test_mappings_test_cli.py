"""``adapter mappings test``: the golden cases run from the command line (CliRunner, in-process).

No database: the cases are translated, never stored. Settings come from ADAPTER_* variables;
``get_settings`` is cached, so each test clears the cache before and after.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from adapter.cli import app
from adapter.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
CSV = Path("csv") / "referral"
LEDGER = CSV / "liuhe-his-csv" / "ledger-two-slips"


def _all_entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for cases in sorted(FIXTURES.rglob("cases.yaml")):
        entries.extend(yaml.safe_load(cases.read_text(encoding="utf-8")))
    return entries


def _personal_data() -> list[str]:
    """The names and national ID numbers written in every case's facts."""
    found: set[str] = set()
    for entry in _all_entries():
        expect = entry.get("expect") or {}
        for patient in expect.get("patients") or [expect.get("patient") or {}]:
            ids = patient.get("national_id") or []
            found.update(str(i) for i in (ids if isinstance(ids, list) else [ids]))
            found.update(str(patient[k]) for k in ("name", "phone") if patient.get(k))
    return sorted(found)


PERSONAL = _personal_data()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("ADAPTER_CONFIG", str(FIXTURES / "consortium.yaml"))
    monkeypatch.setenv("ADAPTER_MAPPINGS_DIR", str(ROOT / "mappings"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def copy(env: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The consortium file and the CSV referral fixtures in tmp_path, ADAPTER_CONFIG there:
    the default DIR is then tmp_path."""
    shutil.copy(FIXTURES / "consortium.yaml", tmp_path / "consortium.yaml")
    shutil.copytree(FIXTURES / CSV, tmp_path / CSV)
    env.setenv("ADAPTER_CONFIG", str(tmp_path / "consortium.yaml"))
    get_settings.cache_clear()
    return tmp_path


def run(*args: Any) -> Result:
    result = CliRunner().invoke(app, ["mappings", "test", *(str(a) for a in args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _no_personal_data(output: str) -> None:
    leaked = [value for value in PERSONAL if value in output]
    assert not leaked, f"personal data in the output: {len(leaked)} values"


def _golden(root: Path) -> Path:
    return root / LEDGER.with_suffix(".expected.json")


def _edit_birth_date(root: Path) -> str:
    """Change the first Patient's birthDate in the ledger's golden file; its original value."""
    path = _golden(root)
    data = json.loads(path.read_text(encoding="utf-8"))
    index, patient = next(
        (i, r) for i, r in enumerate(data["resources"]) if r["resourceType"] == "Patient"
    )
    original = patient["birthDate"]
    patient["birthDate"] = "1900-01-01"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return f'resources[{index}].birthDate: "{original}" != expected "1900-01-01"'


def test_every_real_case_passes(env: pytest.MonkeyPatch) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    total = len(_all_entries())
    assert total > 100
    assert f"{total} passed, 0 failed" in result.output
    assert "FAIL" not in result.output
    assert "ok    hl7v2/oru/std-hl7v2/cbc-basic.hl7" in result.output
    assert "ok    hl7v2/bad/nm-text.hl7" in result.output  # an outcome: case
    assert "ok    csv/referral/liuhe-his-csv/all-rows-bad.csv" in result.output  # quarantined:
    _no_personal_data(result.output)


def test_an_edited_golden_fails_with_the_field_diff(copy: Path) -> None:
    before = {p: p.read_bytes() for p in copy.rglob("*.expected.json")}
    diff_line = _edit_birth_date(copy)

    result = run()

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    at = lines.index(f"FAIL  {LEDGER.as_posix()}.csv")
    assert lines[at + 1].strip() == diff_line
    assert lines[at + 2].startswith("ok    ")  # one differing field, one line
    assert "5 passed, 1 failed" in result.output
    # a check never writes: the other goldens are as they were
    assert all(p.read_bytes() == data for p, data in before.items() if p != _golden(copy))


def test_update_rewrites_the_golden_and_lists_it(copy: Path) -> None:
    original = _golden(FIXTURES).read_text(encoding="utf-8")
    _edit_birth_date(copy)
    untouched = copy / CSV / "liuhe-his-csv" / "bad-row.expected.json"
    stamp = untouched.stat().st_mtime_ns

    result = run("--update")

    assert result.exit_code == 0, result.output
    assert "REWRITTEN" in result.output
    assert "GOLDEN FILES REWRITTEN: 1;" in result.output
    assert f"  {_golden(copy)}" in result.output.splitlines()
    assert _golden(copy).read_text(encoding="utf-8") == original
    assert untouched.stat().st_mtime_ns == stamp  # files that already match are left alone
    again = run()
    assert again.exit_code == 0 and "6 passed, 0 failed" in again.output
    # the hand-written facts are not checked here, and the output says so
    entries = yaml.safe_load((copy / CSV / "cases.yaml").read_text(encoding="utf-8"))
    facts = sum(1 for e in entries if e.get("expect"))
    assert facts and f"{facts} of these cases also state hand-written facts" in again.output


def test_a_missing_golden_fails_with_a_hint(copy: Path) -> None:
    _golden(copy).unlink()

    result = run()

    assert result.exit_code == 1
    lines = result.output.splitlines()
    at = lines.index(f"FAIL  {LEDGER.as_posix()}.csv")
    assert "ledger-two-slips.expected.json" in lines[at + 1]
    assert "--update" in lines[at + 1]
    assert not _golden(copy).exists()  # only --update writes


def test_case_filters_by_path(copy: Path) -> None:
    _edit_birth_date(copy)
    result = run("--case", "bad-row")
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output
    assert "ledger" not in result.output

    assert run("--case", "no-such-case").exit_code == 2


def test_a_broken_quarantine_case_fails_naming_the_missing_text(copy: Path) -> None:
    cases = copy / CSV / "cases.yaml"
    cases.write_text(
        cases.read_text(encoding="utf-8").replace(
            "[the referral names no patient identifier]", "[a text no error says]"
        ),
        encoding="utf-8",
    )
    result = run("--case", "all-rows-bad")
    assert result.exit_code == 1
    assert "no error saying 'a text no error says'" in result.output
    _no_personal_data(result.output)


def test_an_explicit_folder_and_bad_folders(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = FIXTURES / "hl7v2" / "bad"
    result = run(bad)
    assert result.exit_code == 0, result.output
    total = len(yaml.safe_load((bad / "cases.yaml").read_text(encoding="utf-8")))
    assert f"{total} passed, 0 failed" in result.output
    assert "ok    empty.hl7" in result.output  # labels relative to the folder given

    assert run(tmp_path / "missing").exit_code == 2
    assert run(tmp_path).exit_code == 2  # a folder without any cases.yaml


def test_a_bad_consortium_file_cannot_start(env: pytest.MonkeyPatch) -> None:
    env.setenv("ADAPTER_CONFIG", str(FIXTURES / "consortium-bad" / "yaml-syntax.yaml"))
    get_settings.cache_clear()
    result = run(FIXTURES / "csv")
    assert result.exit_code == 2
    assert "cannot start" in result.output


def test_a_mapping_that_does_not_load_cannot_start(copy: Path, env: pytest.MonkeyPatch) -> None:
    mappings = copy / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    table = mappings / "_shared" / "concept-maps" / "referral-direction.yaml"
    table.write_text(table.read_text(encoding="utf-8") + "\n  - [unclosed\n", encoding="utf-8")
    env.setenv("ADAPTER_MAPPINGS_DIR", str(mappings))
    get_settings.cache_clear()

    result = run()

    assert result.exit_code == 2
    assert "cannot start" in result.output
    assert "referral-direction.yaml" in result.output
    assert "adapter mappings check" in result.output
