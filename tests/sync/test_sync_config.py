"""The consortium file's sync: part is checked at load: a mistake names file, line, key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.consortium import load_consortium
from adapter.errors import ConfigError
from tests.sync.support import FACILITY, ROOT, SOURCE_SYSTEM


def _load(tmp_path: Path, source: dict[str, Any]) -> tuple[Path, str]:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    data["sync"] = {"sources": [source]}
    path = tmp_path / "consortium.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_consortium(path)
    return path, caught.value.message


def _line(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(text)


BASE = {"id": "lab-night", "facility": FACILITY, "document_kind": "lab-report"}


def test_an_unknown_source_system_names_its_line(tmp_path: Path) -> None:
    path, message = _load(
        tmp_path, {**BASE, "source": "no-such-lis", "files": {"path": "/x/{date:%Y%m%d}"}}
    )
    assert message == (
        f"{path}:{_line(path, 'no-such-lis')}:sync.sources.0.source: "
        f"facility '{FACILITY}' has no source system 'no-such-lis'"
    )


def test_a_file_night_without_a_date_and_two_places_are_refused(tmp_path: Path) -> None:
    path, message = _load(tmp_path, {**BASE, "source": SOURCE_SYSTEM, "files": {"path": "/x"}})
    assert message.startswith(f"{path}:{_line(path, 'files:')}:sync.sources.0.files: ")
    assert "needs {date:%Y%m%d}" in message
    path, message = _load(
        tmp_path,
        {
            **BASE,
            "source": SOURCE_SYSTEM,
            "files": {"path": "/x/{date:%Y%m%d}"},
            "fhir": {"base_url": "http://h/fhir", "resource_type": "Observation"},
        },
    )
    assert "give exactly one of files, fhir, database" in message


def test_a_database_query_without_day_parameter_is_refused(tmp_path: Path) -> None:
    database = {
        "url": "mysql+pymysql://lis@127.0.0.1/lis",
        "view": "v_report",
        "key_column": "report_no",
        "watermark_column": "updated_at",
        "count_query": "SELECT COUNT(*) FROM v_report",
    }
    path, message = _load(tmp_path, {**BASE, "source": SOURCE_SYSTEM, "database": database})
    assert message.startswith(f"{path}:{_line(path, 'database:')}:sync.sources.0.database: ")
    assert "must use the :day parameter" in message
