"""A name prefix of many values sorted by another name (decision 0146): ``name=王&_sort=given``.

On PostgreSQL the pre-read lists such a criterion's matches by key (decision 0145); a sort
led by a name then reads each match's value once from its array and orders them in SQL
(``search_token_walk.keys_sorted``), where 0117's walk read the matches again for every
value it walked. Every page, in several page sizes, ascending and descending, with its
total, must be the order FHIR's ``_sort`` means computed from the stored names (the
lowest value ascending, the highest descending, resources without a value last, ties by
newest change then id), on both databases, with the keys listed or not (the walk)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.index_values import normalize_text
from adapter.fhir.search_query import parse_search
from adapter.store import save_resources, search_preread
from adapter.store.search import find
from tests.integration.search_pages import sent_statements

search_module = importlib.import_module("adapter.store.search")  # the package's name is a function
T0 = datetime(2026, 12, 7, 8, tzinfo=UTC)
CHARS = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲"  # 30
PATIENTS = 640


def _names(n: int) -> list[tuple[str, list[str]]]:
    """Patient ``n``'s names as (family, givens): 王 with a given name of two characters
    (600 values, repeated: ties) for the first 600, a second name for every seventh (the
    sort takes its lowest or highest value), no given name for every 23rd; then 李 with a
    given name starting with 王, pinyin Wang, and 欧阳 with 王 inside the given name."""
    if n < 600:
        given = CHARS[(n * 7) % 30] + CHARS[(n // 3) % 20]
        names = [("王", [] if n % 23 == 0 else [given])]
        if n % 7 == 0:
            names.append(("王", [CHARS[n % 30], "秀" + CHARS[n % 11]]))
        return names
    if n < 610:
        return [("李", ["王" + CHARS[n % 30]])]
    if n < 625:
        return [("Wang", ["Fang"])]
    return [("欧阳", [CHARS[n % 30] + "王"])]


def _body(n: int) -> dict[str, Any]:
    names = []
    for family, givens in _names(n):
        text = family + "".join(givens) if not family.isascii() else f"{family} {givens[0]}"
        name: dict[str, Any] = {"text": text, "family": family}
        if givens:
            name["given"] = givens
        names.append(name)
    return {"resourceType": "Patient", "id": f"p{n:03d}", "name": names}


def _store(factory: sessionmaker[Session]) -> None:
    """Six batches, each its own ``lastUpdated`` (ties: newest first, then id)."""
    with factory.begin() as session:
        for batch in range(0, PATIENTS, 110):
            bodies = [_body(n) for n in range(batch, min(batch + 110, PATIENTS))]
            save_resources(session, bodies, message_id=None, now=T0 + timedelta(minutes=batch))


def _values(n: int, param: str) -> list[str]:
    texts: list[str] = []
    for family, givens in _names(n):
        if param == "name":  # its text too
            texts.append(family + "".join(givens) if not family.isascii() else "Wang Fang")
        if param in ("family", "name"):
            texts.append(family)
        if param in ("given", "name"):
            texts.extend(givens)
    return [normalize_text(t) for t in texts]


def _expected(prefix: str, sort: str) -> list[str]:
    """The ids ``name=prefix&_sort=sort`` means, from the stored names."""
    param = sort.lstrip("-")
    descending = sort.startswith("-")
    want = normalize_text(prefix)
    matched = [n for n in range(PATIENTS) if any(v.startswith(want) for v in _values(n, "name"))]
    newest = sorted(matched, key=lambda n: (-(n // 110), n))  # the ties' order
    valued = [n for n in newest if _values(n, param)]
    pick = max if descending else min
    valued.sort(key=lambda n: pick(_values(n, param)), reverse=descending)  # stable
    rest = [n for n in newest if not _values(n, param)]
    return [f"p{n:03d}" for n in valued + rest]


def _pages(
    factory: sessionmaker[Session], params: list[tuple[str, str]], size: int
) -> tuple[list[str], set[int | None]]:
    """Every page's ids in order and the pages' totals."""
    ids: list[str] = []
    totals: set[int | None] = set()
    with factory() as session:
        parsed = parse_search("Patient", [*params, ("_count", str(size))])
        offset = 0
        while True:
            page = find(
                session,
                ["Patient"],
                parsed.criteria,
                count=size,
                offset=offset,
                sort=parsed.sort,
                total="accurate",
            )
            ids.extend(b["id"] for b in page.bodies)
            totals.add(page.total)
            if not page.has_more:
                return ids, totals
            offset += size


SEARCHES = [
    ("王", "given", (7, 100, 1000)),  # 600+ ids of name: the keys listed (ManyIds)
    ("王", "-given", (7, 100, 1000)),
    ("王", "family", (100, 1000)),  # every match the same family: one tie of 610
    ("王", "-name", (100, 1000)),
    ("王", "-family", (1000,)),
    ("王伟", "given", (7, 1000)),  # few ids, few keys
    ("欧阳", "-given", (7, 1000)),
]


def _check(factory: sessionmaker[Session]) -> None:
    for prefix, sort, sizes in SEARCHES:
        expected = _expected(prefix, sort)
        assert len(expected) > 7
        for size in sizes:
            ids, totals = _pages(factory, [("name", prefix), ("_sort", sort)], size)
            assert ids == expected, (prefix, sort, size)
            assert totals == {len(expected)}, (prefix, sort, size)


def test_a_prefix_of_many_names_sorted_by_another_name(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The pre-read's keys sorted directly on PostgreSQL: every page and total."""
    _store(session_factory)
    assert len(_expected("王", "given")) == 610
    _check(session_factory)
    if engine.dialect.name != "postgresql":
        return
    with sent_statements(engine) as sent:
        ids, _ = _pages(session_factory, [("name", "王"), ("_sort", "given")], 20)
    assert len(ids) == 610
    pages = [s for s in sent if "resource.body" in s]
    # keys_sorted, then (past the valued ones) the matches without a given name
    assert sum("sorted_terms" in s for s in pages) >= 29
    assert not any("walk_placed" in s for s in sent)  # not the walk


def test_without_listed_keys_the_walk_answers_the_same(
    engine: Engine, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No keys listed (``PROBED_KEYS`` and ``FEW_ROWS`` 0): 0117's walk or the generic
    sort, the same answers."""
    monkeypatch.setattr(search_preread, "PROBED_KEYS", 0)
    monkeypatch.setattr(search_preread, "FEW_ROWS", 0)
    monkeypatch.setattr(search_module, "FEW_ROWS", 0)
    _store(session_factory)
    _check(session_factory)
    if engine.dialect.name != "postgresql":
        return
    with sent_statements(engine) as sent:
        _pages(session_factory, [("name", "王"), ("_sort", "given")], 20)
    assert not any("sorted_terms" in s for s in sent)
