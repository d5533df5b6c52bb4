"""Migration 0047 (decision 0118) on a database that holds data (SQLite, and PostgreSQL in
the -m db pass): ``resource.facility_id`` (the name) becomes ``facility_key`` (a row of
``facility_name``).

Resources of three facilities (one name with a quote) and of none written at head; down to
0045 every row holds its facility's name again and ``facility_name`` is gone; up again every
row names the same facility, and what a facility may see (visibility reads the column for
resources about no patient) is what it was at each step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, inspect, select, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.facilities import name_of
from adapter.store.interning import forget_all
from adapter.store.models import Resource
from adapter.store.visibility import Visibility, is_visible

T0 = datetime(2026, 12, 6, 8, tzinfo=UTC)
_FACILITIES = ("county-hospital", "shiqiao's-centre", "town-2", None)
_r = Resource.__table__


def _save(engine: Engine) -> None:
    with make_factory(engine).begin() as session:
        for n, facility in enumerate(_FACILITIES * 5):
            resources: list[dict[str, Any]] = [{"resourceType": "Basic", "id": f"b{n}"}]
            if n % 3 == 0:
                resources.append({"resourceType": "Patient", "id": f"p{n}"})
            save_resources(session, resources, message_id=None, now=T0, facility_id=facility)


def _stored(engine: Engine) -> dict[str, str | None]:
    with make_factory(engine)() as session:
        if "facility_key" in _columns(engine):
            query: Any = select(_r.c.resource_type, _r.c.id, name_of(_r.c.facility_key))
        else:  # 0045's form: the name in the row
            query = text("SELECT resource_type, id, facility_id FROM resource")
        return {f"{t}/{i}": f for t, i, f in session.execute(query)}


def _visible(engine: Engine) -> dict[tuple[str, str], bool]:
    with make_factory(engine)() as session:
        ids = [
            row.id for row in session.execute(select(_r.c.id).where(_r.c.resource_type == "Basic"))
        ]
        return {
            (facility, rid): is_visible(session, Visibility(facility, T0), "Basic", rid)
            for facility in [f for f in _FACILITIES if f] + ["unknown"]
            for rid in ids
        }


def _columns(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in inspect(conn).get_columns("resource")}


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_0047_facility_names_to_keys_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        _save(engine)
        stored, visible = _stored(engine), _visible(engine)
        assert stored["Basic/b1"] == "shiqiao's-centre" and stored["Basic/b3"] is None
        assert visible[("county-hospital", "b0")] and not visible[("town-2", "b0")]
        assert not any(v for (f, _), v in visible.items() if f == "unknown")
        with engine.connect() as conn:
            keys = conn.execute(text("SELECT DISTINCT facility_key FROM resource")).scalars()
            assert {k for k in keys if k is not None} == {1, 2, 3}

        downgrade(engine, "0046")
        assert "facility_name" not in _tables(engine)
        assert "facility_id" in _columns(engine) and "facility_key" not in _columns(engine)
        assert _stored(engine) == stored
        with engine.connect() as conn:  # the names in the column itself
            rows = conn.execute(text("SELECT id, facility_id FROM resource WHERE id = 'b1'"))
            assert rows.one() == ("b1", "shiqiao's-centre")

        migrate(engine)
        forget_all(engine)  # facility_name was made again: the keys cached for it are gone
        assert _stored(engine) == stored
        assert _visible(engine) == visible
        # written after the upgrade: a known facility keeps its key, a new one gets one
        with make_factory(engine).begin() as session:
            save_resources(session, [{"resourceType": "Basic", "id": "n1"}], message_id=None,
                           now=T0, facility_id="town-2")  # fmt: skip
            save_resources(session, [{"resourceType": "Basic", "id": "n2"}], message_id=None,
                           now=T0, facility_id="town-9")  # fmt: skip
        after = _stored(engine)
        assert (after["Basic/n1"], after["Basic/n2"]) == ("town-2", "town-9")
        with engine.connect() as conn:
            names = {
                n: k for n, k in conn.execute(text("SELECT name, facility_key FROM facility_name"))
            }
        assert len(names) == 4 and names["town-9"] == 4
    finally:
        engine.dispose()
