"""The ``keep-newer-and-warn`` on_conflict policy: a stored version newer by the ``by``
dateTime is kept (with a warning); a newer or equal one, or values that cannot be compared,
replace it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapter.errors import MappingDefinitionError
from adapter.pipeline.merge import merge_stored
from tests.unit.mapping_support import load, write

POLICY = {"Composition": {"policy": "keep-newer-and-warn", "by": "date"}}


def _comp(date: Any, status: str = "final") -> dict[str, Any]:
    return {"resourceType": "Composition", "id": "c1", "status": status, "date": date}


def _stored(resource: dict[str, Any] | None):  # type: ignore[no-untyped-def]
    def read(kind: str, rid: str) -> dict[str, Any] | None:
        if resource is None:
            return None
        return {**resource, "meta": {"versionId": "2"}}

    return read


def test_an_older_version_keeps_the_stored_one_with_a_warning() -> None:
    stored = _comp("2026-11-19T09:15:00+08:00", "amended")
    merged, issues = merge_stored(_comp("2026-11-18T16:30:00+08:00"), _stored(stored), POLICY)
    assert merged == stored  # without meta: unchanged content, no new version
    [issue] = issues
    assert issue.severity == "warning" and issue.code == "conflict"
    assert "older than the one stored" in issue.diagnostics
    assert issue.expression == "Composition.date"


@pytest.mark.parametrize(
    "new", ["2026-11-19T09:15:00+08:00", "2026-11-20T00:00:00Z", "2026-11-18T16:30:00+08:00"]
)
def test_a_newer_or_equal_version_replaces(new: str) -> None:
    # 2026-11-18T16:30+08:00 is 08:30Z: equal to the stored 08:30Z
    stored = _comp("2026-11-18T08:30:00Z")
    merged, issues = merge_stored(_comp(new, "amended"), _stored(stored), POLICY)
    assert merged["status"] == "amended" and issues == []


@pytest.mark.parametrize(
    ("new", "old"),
    [
        ("2026-11-18", "2026-11-19T09:15:00+08:00"),
        ("2026-11-18T10:00:00", "2026-11-19T09:15:00+08:00"),
        (None, "2026-11-19T09:15:00+08:00"),
        ("2026-11-18T10:00:00+08:00", "2026-11"),
    ],
)
def test_values_that_cannot_be_compared_replace(new: Any, old: Any) -> None:
    merged, issues = merge_stored(_comp(new, "amended"), _stored(_comp(old)), POLICY)
    assert merged["status"] == "amended" and issues == []


def test_nothing_stored_stores_the_new_one() -> None:
    resource = _comp("2026-11-18T16:30:00+08:00")
    assert merge_stored(resource, _stored(None), POLICY) == (resource, [])


def _template(policy: str) -> str:
    return f"""\
        version: 1
        kind: resource
        resourceType: Basic
        id_from: [[x]]
        on_conflict:
          {policy}
        body:
          code: {{text: x}}
        """


def test_keep_newer_needs_by(tmp_path: Path) -> None:
    files = {"_shared/hl7v2/resources/thing.yaml": _template("policy: keep-newer-and-warn")}
    with pytest.raises(MappingDefinitionError):
        load(write(tmp_path, files))


def test_keep_newer_with_by_loads(tmp_path: Path) -> None:
    files = {
        "_shared/hl7v2/resources/thing.yaml": _template("{policy: keep-newer-and-warn, by: date}")
    }
    mappings = load(write(tmp_path, files))
    (template,) = mappings.formats["hl7v2"].templates.values()
    assert template.on_conflict == {"policy": "keep-newer-and-warn", "by": "date"}
