"""``_sort`` by a reference (decision 0080, second part): a whole type walks the targets of
the rows that name them by key in ``(resource_type, id)`` order and merges the rows that
keep the text; the order must be the ``Type/id`` texts' order, as when every row held the
text. Checked against an order computed here from the references written, and against the
same sort with a criterion that matches every resource (which places and sorts the
matches without the walk): ascending and descending, several values per resource (the
lowest ascending, the highest descending), a key row and a text row of equal value,
ties, paging, and a second sort key."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store import make_engine, save_resources, session_factory
from adapter.store.collation import bytewise
from adapter.store.models import SearchParam
from adapter.store.search_terms import reference_rows

T0 = datetime(2026, 3, 1, tzinfo=UTC)

# Practitioners stored before the encounters: references to them are keys. Ids compared by
# their bytes: "Z" < "a", "b-1" < "b.2" ("-" < "."), "ab" < "b-1"
STORED = ["a", "b-1", "b.2", "c", "Z"]
# (encounter id, participants, class): saved one per minute in this order, except the two
# saved together (same lastUpdated: the id decides). "ab", "zz" and (until it is stored)
# "late" are never stored or stored later: those rows keep the text
ENCOUNTERS: list[tuple[str, list[str], str]] = [
    ("e1", ["c", "a"], "AMB"),
    ("e2", ["b-1", "ab"], "IMP"),  # a key and a text in one resource
    ("e3", ["zz"], "AMB"),
    ("e4", ["a"], "IMP"),  # the same lowest value as e1
    ("e5", [], "AMB"),  # no value: last both ways
    ("e6", ["Z"], "IMP"),
    ("e7", ["b.2", "b-1"], "AMB"),
    ("e10", ["late"], "IMP"),  # text: Practitioner/late is stored after it
]
TOGETHER = [("e9", ["b-1"], "AMB"), ("e8", ["b-1"], "IMP")]  # one transaction
AFTER_LATE = [("e11", ["late", "zz"], "AMB")]  # a key "late" equal to e10's text


def _encounter(eid: str, participants: list[str], klass: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": klass,
        },
        "participant": [{"individual": {"reference": f"Practitioner/{p}"}} for p in participants],
    }


def _practitioner(pid: str) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "id": pid}


def _seed(app: Any) -> dict[str, tuple[list[str], str, datetime]]:
    """Save the data; return each encounter's participants, class and lastUpdated."""
    factory = app.state.session_factory
    seen: dict[str, tuple[list[str], str, datetime]] = {}
    minute = 0

    def save(bodies: list[dict[str, Any]]) -> datetime:
        nonlocal minute
        minute += 1
        now = T0 + timedelta(minutes=minute)
        with factory.begin() as session:
            save_resources(session, bodies, message_id=None, now=now)
        return now

    save([_practitioner(p) for p in STORED])
    for eid, participants, klass in ENCOUNTERS:
        seen[eid] = (participants, klass, save([_encounter(eid, participants, klass)]))
    now = save([_encounter(*e) for e in TOGETHER])
    seen.update({eid: (participants, klass, now) for eid, participants, klass in TOGETHER})
    save([_practitioner("late")])
    for eid, participants, klass in AFTER_LATE:
        seen[eid] = (participants, klass, save([_encounter(eid, participants, klass)]))
    return seen


@pytest.fixture(scope="module")
def seeded(module_database_url: str) -> Iterator[tuple[TestClient, dict[str, Any], Any]]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        data = _seed(app)
        yield client, data, app
    app.state.engine.dispose()


def expected(
    data: dict[str, tuple[list[str], str, datetime]],
    descending: bool,
    klass: str | None = None,
    then_id_descending: bool = False,
) -> list[str]:
    """The order FHIR asks for, computed from the references written: the lowest
    (ascending) or highest (descending) ``Practitioner/<id>`` text, compared by its bytes
    (the test databases: SQLite, PostgreSQL in C.UTF-8); then the newest change first and
    the id (``then_id_descending``: the id descending, a second sort key ``-_id``);
    resources without a value last, in the same order of the other keys."""
    rows = [(eid, p, when) for eid, (p, k, when) in data.items() if klass in (None, k)]
    # stable sorts, the last key first
    rows.sort(key=lambda r: r[0].encode(), reverse=then_id_descending)
    if not then_id_descending:
        rows.sort(key=lambda r: r[2], reverse=True)
    pick = max if descending else min
    valued = [r for r in rows if r[1]]
    valued.sort(key=lambda r: pick(f"Practitioner/{p}".encode() for p in r[1]), reverse=descending)
    return [r[0] for r in valued] + [r[0] for r in rows if not r[1]]


def ids(client: TestClient, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def paged(client: TestClient, url: str) -> list[str]:
    """Every page, following the ``next`` links."""
    found: list[str] = []
    following: str | None = url
    while following:
        response = client.get(following)
        assert response.status_code == 200, response.text
        body = response.json()
        found += [e["resource"]["id"] for e in body.get("entry", [])]
        links = {link["relation"]: link["url"] for link in body["link"]}
        following = links.get("next", "").removeprefix("http://testserver") or None
    return found


def test_the_data_mixes_keys_and_texts(seeded: tuple[TestClient, Any, Any]) -> None:
    """The walk's two parts both have rows (else this file would test one form only), and
    the database compares texts by their bytes, so the whole type is walked."""
    _, _, app = seeded
    si, sp = reference_rows(), SearchParam.__table__  # with PostgreSQL's arrays (0088)
    with app.state.session_factory() as session:
        assert bytewise(session)
        param = select(sp.c.param_id).where(
            sp.c.resource_type == "Encounter", sp.c.param == "practitioner"
        )
        rows = session.execute(
            select(si.c.target_key, si.c.reference).where(si.c.param_id.in_(param))
        ).all()
    keys = [r for r in rows if r.target_key is not None]
    texts = sorted(r.reference for r in rows if r.reference is not None)
    assert len(keys) == 10
    assert texts == ["Practitioner/ab", "Practitioner/late", "Practitioner/zz", "Practitioner/zz"]


@pytest.mark.parametrize("descending", [False, True])
def test_whole_type_in_the_texts_order(
    seeded: tuple[TestClient, Any, Any], descending: bool
) -> None:
    client, data, _ = seeded
    sort = "-practitioner" if descending else "practitioner"
    whole = ids(client, f"/fhir/Encounter?_sort={sort}&_count=50")
    assert whole == expected(data, descending)
    # a criterion every encounter meets: the matches placed and sorted without the walk
    assert ids(client, f"/fhir/Encounter?status=finished&_sort={sort}&_count=50") == whole


def test_known_places(seeded: tuple[TestClient, Any, Any]) -> None:
    """A few places spelled out: "Z" before "a"; e1 and e4 tie on Practitioner/a (newer
    first); e11's key "late" equals e10's text (newer first), and e11's text "zz" is its
    highest (with e3's); e8 and e9 tie on value and time (by id); e5 has no value."""
    client, _, _ = seeded
    assert ids(client, "/fhir/Encounter?_sort=practitioner&_count=50") == [
        "e6", "e4", "e1", "e2", "e8", "e9", "e7", "e11", "e10", "e3", "e5",
    ]  # fmt: skip
    assert ids(client, "/fhir/Encounter?_sort=-practitioner&_count=50") == [
        "e11", "e3", "e10", "e1", "e7", "e8", "e9", "e2", "e4", "e6", "e5",
    ]  # fmt: skip


@pytest.mark.parametrize("sort", ["practitioner", "-practitioner"])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_pages_give_the_whole_order(
    seeded: tuple[TestClient, Any, Any], sort: str, count: int
) -> None:
    """Pages of every size, by the next links and by each offset: the unpaged order, each
    resource once, across the two parts and into the resources without a value."""
    client, data, _ = seeded
    whole = expected(data, sort.startswith("-"))
    assert paged(client, f"/fhir/Encounter?_sort={sort}&_count={count}") == whole
    for offset in range(len(whole) + 1):
        page = ids(client, f"/fhir/Encounter?_sort={sort}&_count={count}&_offset={offset}")
        assert page == whole[offset : offset + count], offset


@pytest.mark.parametrize("descending", [False, True])
def test_with_a_criterion(seeded: tuple[TestClient, Any, Any], descending: bool) -> None:
    client, data, _ = seeded
    sort = "-practitioner" if descending else "practitioner"
    for klass in ("AMB", "IMP"):
        url = f"/fhir/Encounter?class={klass}&_sort={sort}"
        assert ids(client, url + "&_count=50") == expected(data, descending, klass)
        assert paged(client, url + "&_count=2") == expected(data, descending, klass)


def test_a_second_sort_key(seeded: tuple[TestClient, Any, Any]) -> None:
    """``_sort=practitioner,-_id``: equal values by id descending (e1/e4, e10/e11, e8/e9)."""
    client, data, _ = seeded
    whole = ids(client, "/fhir/Encounter?_sort=practitioner,-_id&_count=50")
    assert whole == expected(data, False, then_id_descending=True)
    assert paged(client, "/fhir/Encounter?_sort=practitioner,-_id&_count=3") == whole
    every = ids(client, "/fhir/Encounter?status=finished&_sort=practitioner,-_id&_count=50")
    assert every == whole


@pytest.mark.db
def test_a_collation_other_than_bytes_is_not_walked() -> None:
    """PostgreSQL: the texts' columns in an ICU collation (or the database's default when
    it is not C-like) are not ordered by their bytes; in "C" or the C.UTF-8 default they
    are (adapter/store/collation.py)."""
    base = os.environ.get("ADAPTER_TEST_DATABASE_URL")
    if not base:
        pytest.skip("PostgreSQL only (ADAPTER_TEST_DATABASE_URL)")
    admin = make_engine(base)
    schema = f"collation_{os.getpid()}"
    answers = {}
    try:
        for name, collation in (("icu", '"und-x-icu"'), ("c", '"C"'), ("default", '"default"')):
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}_{name}" CASCADE'))
                conn.execute(text(f'CREATE SCHEMA "{schema}_{name}"'))
                conn.execute(
                    text(
                        f'CREATE TABLE "{schema}_{name}".resource (resource_type varchar(64), '
                        f"id varchar(64) COLLATE {collation})"
                    )
                )
                conn.execute(text(f'CREATE TABLE "{schema}_{name}".search_index (reference text)'))
            url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}_{name}"})
            engine = make_engine(url.render_as_string(hide_password=False))
            with session_factory(engine)() as session:
                answers[name] = bytewise(session)
            engine.dispose()
        with admin.connect() as conn:
            default = conn.execute(
                text("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            ).scalar_one()
    finally:
        with admin.begin() as conn:
            for name in ("icu", "c", "default"):
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}_{name}" CASCADE'))
        admin.dispose()
    c_like = default.split(".")[0] in ("C", "POSIX")
    assert answers == {"icu": False, "c": c_like, "default": c_like}
