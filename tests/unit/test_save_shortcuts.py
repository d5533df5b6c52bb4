"""Decision 0150: the save's shortcuts give what the general code gives.

``_stamped``'s path for a resource whose first keys are ``resourceType`` and ``id``, and
``stripped``'s for a body whose ``meta`` holds its two stamps alone, against the code they
bypass (the loop over the keys; the cut of the whole body's text), on many shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from adapter.store import body_stamps
from adapter.store.body_stamps import StampedBody, stripped
from adapter.store.resources import _stamped

_NOW = datetime(2026, 12, 7, 10, 0, 0, 123000, tzinfo=UTC)


def _stamped_by_loop(
    resource: dict[str, Any], version_id: int, stamp: str, kind: type[dict[str, Any]]
) -> dict[str, Any]:
    """``_stamped`` as it was before decision 0150 (one step a key)."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = stamp
    out: dict[str, Any] = kind()
    for key, value in resource.items():
        if key == "meta":
            continue
        out[key] = value
        if key == "id":
            out["meta"] = meta
    if "meta" not in out:
        out["meta"] = meta
    return out


_OBSERVATION = {
    "resourceType": "Observation",
    "id": "0b6c7c1e-2f4d-4a57-9d7e-4f3c2b1a0e9d",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 13.2, "unit": "g/dL"},
    "note": [{"text": 'quoted "text" and \\ and 中文'}],
}

_SHAPES: list[dict[str, Any]] = [
    _OBSERVATION,
    {"resourceType": "Patient", "id": "a"},
    {"resourceType": "Patient", "id": "a", "meta": {}},
    {"resourceType": "Patient", "id": "a", "meta": None, "active": True},
    {"resourceType": "Patient", "id": "a", "meta": {"source": "lab"}, "active": True},
    {"resourceType": "Patient", "id": "a", "active": True, "meta": {"tag": [{"code": "x"}]}},
    {"resourceType": "Patient", "id": "a", "meta": {"versionId": "9", "lastUpdated": "old"}},
    {"meta": {"security": []}, "resourceType": "Patient", "id": "a"},
    {"id": "a", "resourceType": "Patient", "gender": "female"},
    {"resourceType": "Patient", "gender": "female", "id": "a"},
    {"resourceType": "Patient", "id": "a.b-c", "name": [{"text": "张三"}]},
    {"resourceType": "Patient", "id": "中文"},
    {"resourceType": "Patient", "id": 'a"b'},
    {"resourceType": "Patient", "id": "a\\b"},
    {"resourceType": "Patient", "id": "a\tb"},
    {"resourceType": "Patient", "id": "a b"},
    {"resourceType": "Patient", "id": "a\x7fb"},
    {"resourceType": 'Pa"t', "id": "a"},
    {"resourceType": "Pät", "id": "a"},
]


@pytest.mark.parametrize("resource", _SHAPES)
@pytest.mark.parametrize("kind", [dict, StampedBody])
def test_stamped_is_the_loops_dictionary(resource: dict[str, Any], kind: type) -> None:
    stamp = "2026-12-07T10:00:00.123+00:00"
    made = _stamped(resource, 4, _NOW, stamp, kind)
    expected = _stamped_by_loop(resource, 4, stamp, kind)
    assert type(made) is kind
    assert list(made.items()) == list(expected.items())
    assert orjson.dumps(made) == orjson.dumps(expected)
    assert made["meta"] is not resource.get("meta")  # a copy: the input is left as it was
    made["meta"]["x"] = 1
    assert "x" not in (resource.get("meta") or {})


@pytest.mark.parametrize("resource", _SHAPES)
def test_stripped_shortcut_is_the_cut_of_the_whole_text(resource: dict[str, Any]) -> None:
    body = _stamped(resource, 4, _NOW, None, StampedBody)
    made = stripped(body)
    keys = list(body)
    if keys[:3] != ["resourceType", "id", "meta"] or " " in str(body["id"]):
        assert made is None
        return
    assert made == body_stamps._cut(body, body["resourceType"], body["id"], body["meta"])


def test_the_shortcut_is_taken_for_the_common_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common shape goes the short way, and it gives the cut's bytes (so a shortcut
    writing other bytes fails the test above, and one not taken fails this one)."""
    body = _stamped(_OBSERVATION, 1, _NOW, None, StampedBody)
    cut = body_stamps._cut(body, body["resourceType"], body["id"], body["meta"])
    monkeypatch.setattr(body_stamps, "_cut", lambda *a: pytest.fail("not the short way"))
    assert stripped(body) == cut


@pytest.mark.parametrize(
    "meta",
    [
        {"lastUpdated": "t", "versionId": "1"},  # swapped: stored whole
        {"versionId": 1, "lastUpdated": "t"},  # not text
        {"versionId": "1", "lastUpdated": None},
        {"source": "x", "versionId": "1"},
    ],
)
def test_other_stamps_go_the_general_way(meta: dict[str, Any]) -> None:
    body = StampedBody(resourceType="Patient", id="a", meta=meta, active=True)
    assert stripped(body) == body_stamps._cut(body, "Patient", "a", meta)


def test_outbox_state_bound_once_a_name_gives_each_rows_number() -> None:
    """The outbox state's names are bound once a distinct name (``_apply``'s memo): the
    same numbers, None kept, an unknown name refused as before."""
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    from adapter.store import fast_insert
    from adapter.store.models import Base

    table = Base.metadata.tables["outbox"]
    dialect = SQLiteDialect_pysqlite()
    order = tuple(c.key for c in table.c)
    found = {order[at]: p for at, p, skip, memo in fast_insert._processors(table, dialect, order)}
    memoised = {
        order[at] for at, _, _, memo in fast_insert._processors(table, dialect, order) if memo
    }
    assert "state" in memoised
    bind = found["state"]
    values = ["pending", "delivered", None, "pending", "dead", "in-flight", "pending"]
    assert fast_insert._apply(values, bind, True, True) == [bind(v) for v in values]
    with pytest.raises(ValueError):
        fast_insert._apply(["pending", "no such state"], bind, True, True)


@pytest.mark.parametrize("resource", _SHAPES)
def test_content_hash_is_its_definition(resource: dict[str, Any]) -> None:
    """sha256 of the sorted JSON without the stamps (decision 0092), first 32 hex
    characters: with ``meta`` or without (then the resource is its own canonical form)."""
    import hashlib

    from adapter.store.resources import content_hash

    rest, meta = resource, resource.get("meta")
    if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        rest = {k: v for k, v in resource.items() if k != "meta"}
        if meta:
            rest["meta"] = meta
    text = orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)
    assert content_hash(resource) == hashlib.sha256(text).hexdigest()[:32]
    if resource.get("meta", True):  # (an empty ``meta`` is hashed as given, stamped or not)
        stamped = _stamped(resource, 3, _NOW, None, StampedBody)
        assert content_hash(stamped) == content_hash(resource)  # the stamps are left out
