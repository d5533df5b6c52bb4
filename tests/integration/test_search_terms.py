"""PostgreSQL's references by key as per-resource arrays (decision 0088, search_terms.py).

Each element is ``param_id << 40 | target_key``: exact, so two references that a narrower
packing (``(param_id << 32) + target_key``) would make one value stay apart in every reader.
A changed resource's array replaces the old one. SQLite keeps rows (nothing to pack): the
searches below run there too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.search_query import parse_search
from adapter.store import save_resources
from adapter.store.search import find
from adapter.store.search_include import included
from adapter.store.search_terms import PARAM_MAX, SHIFT, TARGET_MAX, ref_key

T0 = datetime(2026, 5, 3, 2, 0, tzinfo=UTC)


def _save(factory: sessionmaker[Session], bodies: list[dict[str, Any]], n: int) -> None:
    with factory.begin() as session:
        save_resources(session, bodies, message_id=None, now=T0 + timedelta(minutes=n))


def _obs(oid: str, **refs: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        **refs,
    }


def _ask(factory: sessionmaker[Session], rtype: str, params: list[tuple[str, str]]) -> list[str]:
    with factory() as session:
        parsed = parse_search(rtype, [*params, ("_count", "50")])
        page = find(session, [rtype], parsed.criteria, count=50, sort=parsed.sort, total="accurate")
        extra, _ = included(session, page.bodies, parsed.includes)
        assert page.total == len(page.bodies)
        return sorted(f"{b['resourceType']}/{b['id']}" for b in [*page.bodies, *extra])


def _param(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT param_id FROM search_param WHERE resource_type = 'Observation'"
                    " AND param = :p AND kind = 4"
                ),
                {"p": name},
            ).scalar_one()
        )


def _next_key(engine: Engine, key: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("SELECT setval('resource_key_seq', :k, false)"), {"k": key})


def test_keys_are_exact_where_a_narrower_packing_collides(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the arrays are PostgreSQL's; SQLite keeps rows")
    f = session_factory
    # the parameters' ids: made by a first write
    _save(
        f,
        [{"resourceType": "Patient", "id": "p0"}, {"resourceType": "Practitioner", "id": "d0"}],
        0,
    )
    _save(
        f,
        [
            _obs(
                "o0",
                subject={"reference": "Patient/p0"},
                performer=[{"reference": "Practitioner/d0"}],
            )
        ],
        1,
    )
    patient, performer = _param(engine, "patient"), _param(engine, "performer")
    assert patient != performer
    # targets whose keys differ by exactly the parameters' difference shifted by 32 bits
    low, high = (patient, performer) if patient < performer else (performer, patient)
    base = 5 << 32
    keys = {high: base, low: base + ((high - low) << 32)}
    assert (low << 32) + keys[low] == (high << 32) + keys[high]  # one value if packed in 32 bits
    assert keys[low] <= TARGET_MAX
    _next_key(engine, keys[patient])
    _save(f, [{"resourceType": "Patient", "id": "pa"}], 2)
    _next_key(engine, keys[performer])
    _save(f, [{"resourceType": "Practitioner", "id": "db"}], 3)
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT id, resource_key FROM resource")).all())
    assert (found["pa"], found["db"]) == (keys[patient], keys[performer])
    _save(f, [_obs("o1", subject={"reference": "Patient/pa"})], 4)
    _save(f, [_obs("o2", performer=[{"reference": "Practitioner/db"}])], 5)
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT id, resource_key FROM resource")).all())
        refs = dict(conn.execute(text("SELECT resource_key, refs FROM search_terms")).all())
    assert refs[found["o1"]] == [ref_key(patient, found["pa"])]
    assert refs[found["o2"]] == [ref_key(performer, found["db"])]

    assert _ask(f, "Observation", [("patient", "Patient/pa")]) == ["Observation/o1"]
    assert _ask(f, "Observation", [("performer", "Practitioner/db")]) == ["Observation/o2"]
    assert _ask(f, "Observation", [("performer:missing", "true"), ("_id", "o1,o2")]) == [
        "Observation/o1"
    ]
    assert _ask(f, "Observation", [("patient.name:missing", "false")]) == []  # no name
    assert _ask(f, "Observation", [("_id", "o1,o2"), ("_sort", "-performer")]) == [
        "Observation/o1",
        "Observation/o2",
    ]
    assert _ask(f, "Patient", [("_id", "pa"), ("_revinclude", "Observation:*")]) == [
        "Observation/o1",
        "Patient/pa",
    ]
    assert _ask(f, "Practitioner", [("_has:Observation:performer:status", "final")]) == [
        "Practitioner/d0",
        "Practitioner/db",
    ]
    assert _ask(f, "Observation", [("_id", "o2"), ("_include", "Observation:*")]) == [
        "Observation/o2",
        "Practitioner/db",
    ]


def test_an_update_replaces_the_resources_values(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    f = session_factory
    _save(f, [{"resourceType": "Patient", "id": "pa"}, {"resourceType": "Patient", "id": "pb"}], 0)
    _save(f, [_obs("o1", subject={"reference": "Patient/pa"})], 1)
    assert _ask(f, "Observation", [("subject", "Patient/pa")]) == ["Observation/o1"]
    _save(f, [_obs("o1", subject={"reference": "Patient/pb"})], 2)
    assert _ask(f, "Observation", [("subject", "Patient/pa")]) == []
    assert _ask(f, "Observation", [("subject", "Patient/pb")]) == ["Observation/o1"]
    assert _ask(f, "Observation", [("subject:missing", "false")]) == ["Observation/o1"]
    _save(f, [_obs("o1")], 3)  # no reference left
    assert _ask(f, "Observation", [("subject", "Patient/pb")]) == []
    assert _ask(f, "Observation", [("subject:missing", "true")]) == ["Observation/o1"]
    if engine.dialect.name == "postgresql":
        # the resource keeps its row for its token values (decision 0103): no reference
        q = text("SELECT count(*) FROM search_terms WHERE refs <> '{}'")
        with engine.connect() as conn:
            assert conn.execute(q).scalar() == 0


def test_a_reference_with_only_a_display_keeps_missing_exact(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """A reference with no value (only a display) is present for ``:missing``: a row on
    SQLite, a presence marker (``param_id << 40``) in the array on PostgreSQL (decision
    0124), read back by every reader as a row without a value."""
    f = session_factory
    _save(f, [{"resourceType": "Practitioner", "id": "d0"}], 0)
    named = {"display": "王医生"}
    _save(f, [_obs("o1", performer=[named])], 1)  # no other reference: no array before
    _save(f, [_obs("o2", performer=[named, {"reference": "Practitioner/d0"}])], 2)
    _save(f, [_obs("o3", performer=[named, named])], 3)
    _save(f, [_obs("o4")], 4)
    every = ("_id", "o1,o2,o3,o4")
    assert _ask(f, "Observation", [every, ("performer:missing", "true")]) == ["Observation/o4"]
    assert _ask(f, "Observation", [("performer:missing", "true")]) == ["Observation/o4"]
    assert _ask(f, "Observation", [("performer:missing", "false")]) == [
        "Observation/o1",
        "Observation/o2",
        "Observation/o3",
    ]
    assert _ask(f, "Observation", [("performer", "Practitioner/d0")]) == ["Observation/o2"]
    assert _ask(f, "Observation", [("_id", "o1,o3"), ("_include", "Observation:*")]) == [
        "Observation/o1",
        "Observation/o3",
    ]
    assert _ask(f, "Practitioner", [("_has:Observation:performer:status", "final")]) == [
        "Practitioner/d0"
    ]
    if engine.dialect.name == "postgresql":
        performer = _param(engine, "performer")
        with engine.connect() as conn:
            found = dict(conn.execute(text("SELECT id, resource_key FROM resource")).all())
            refs = dict(conn.execute(text("SELECT resource_key, refs FROM search_terms")).all())
            bare = conn.execute(
                text("SELECT count(*) FROM search_index WHERE kind = 4 AND target_key IS NULL")
            ).scalar()
        assert bare == 0  # no row left without a value
        assert refs[found["o1"]] == refs[found["o3"]] == [performer << SHIFT]
        assert refs[found["o2"]] == sorted([performer << SHIFT, ref_key(performer, found["d0"])])
    _save(f, [_obs("o1")], 5)  # the display gone: missing again
    assert _ask(f, "Observation", [("performer:missing", "true")]) == [
        "Observation/o1",
        "Observation/o4",
    ]


def test_a_key_that_does_not_fit_is_refused() -> None:
    assert ref_key(PARAM_MAX, TARGET_MAX) == (PARAM_MAX << SHIFT) | TARGET_MAX < 2**63
    for param, target in ((1, TARGET_MAX + 1), (PARAM_MAX + 1, 1), (0, 1), (1, 0)):
        with pytest.raises(ValueError):
            ref_key(param, target)
