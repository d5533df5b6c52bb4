"""A name prefix or part that meets many dictionary values (decision 0145): ``name=王`` on a
county's Patients meets thousands of names (every 王 + given name), more than the
512 (``KEYED_IDS`` before this decision) whose arrays the pre-read left to the page.
On PostgreSQL the pre-read now probes every id's arrays, counts them all and returns their
keys up to ``PROBED_KEYS`` (the page and the count read the resources by key; no count
statement for a criterion alone); past that the page probes the ids again, bound as the
text the pre-read wrote (never parsed by the client). Every answer, page by page in
several page sizes with its total, must be what the criterion means computed from the
stored names, on both databases and through each of those forms."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.index_values import normalize_text
from adapter.fhir.search_query import parse_search
from adapter.store import save_resources, search_preread, search_preshape
from adapter.store.search import find
from tests.integration.search_pages import sent_statements

search_module = importlib.import_module("adapter.store.search")  # the package's name is a function
T0 = datetime(2026, 12, 7, 7, tzinfo=UTC)
CHARS = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲"  # 30
PATIENTS = 640  # 600 named 王 + a distinct given name: 600 ids of ``name`` alone start with 王


def _person(n: int) -> tuple[str, str, str]:
    """(family, given, gender) of Patient ``n``: 王 with a distinct given name for the first
    600; then 李 with a given name that starts with 王 (a ``name`` prefix match by the given
    name), pinyin (Wang: not 王), 欧阳 with 王 inside the given name (a ``:contains`` match)."""
    gender = "female" if n % 3 else "male"
    if n < 600:
        return "王", CHARS[n % 30] + CHARS[n // 30], gender
    if n < 610:
        return "李", "王" + CHARS[n % 30], gender
    if n < 625:
        return "Wang", "Fang", gender
    return "欧阳", CHARS[n % 30] + "王", gender


def _texts(n: int) -> list[str]:
    family, given, _ = _person(n)
    text = f"{family} {given}" if family.isascii() else family + given
    return [text, family, given]


def _store(factory: sessionmaker[Session]) -> None:
    """Six batches, each its own ``lastUpdated`` (the default sort: newest first, then id)."""
    with factory.begin() as session:
        for batch in range(0, PATIENTS, 110):
            bodies = []
            for n in range(batch, min(batch + 110, PATIENTS)):
                family, given, gender = _person(n)
                text = _texts(n)[0]
                bodies.append(
                    {
                        "resourceType": "Patient",
                        "id": f"p{n:03d}",
                        "gender": gender,
                        "name": [{"text": text, "family": family, "given": [given]}],
                    }
                )
            when = T0 + timedelta(minutes=batch)
            save_resources(session, bodies, message_id=None, now=when)


def _expected(
    modifier: str, value: str, gender: str | None = None, param: str = "name"
) -> list[str]:
    """The ids ``param[:modifier]=value`` means (FHIR string matching; ``name``: on every
    part of the name), in the default order: newest batch first, then id."""
    want = normalize_text(value)
    found = []
    part = {"name": slice(0, 3), "family": slice(1, 2), "given": slice(2, 3)}[param]
    for n in range(PATIENTS):
        texts = [normalize_text(t) for t in _texts(n)[part]]
        hit = any(want in t if modifier == "contains" else t.startswith(want) for t in texts)
        if hit and (gender is None or _person(n)[2] == gender):
            found.append(n)
    return [f"p{n:03d}" for n in sorted(found, key=lambda n: (-(n // 110), n))]


def _pages(
    factory: sessionmaker[Session], params: list[tuple[str, str]], size: int, total: Any
) -> tuple[list[str], list[int | None]]:
    """Every page's ids in order and each page's total."""
    ids: list[str] = []
    totals: list[int | None] = []
    with factory() as session:
        parsed = parse_search("Patient", [*params, ("_count", str(size))])
        offset = 0
        while True:
            page = find(
                session, ["Patient"], parsed.criteria, count=size, offset=offset, total=total
            )
            ids.extend(b["id"] for b in page.bodies)
            totals.append(page.total)
            if not page.has_more:
                return ids, totals
            offset += size


SEARCHES = [
    ("", "王", None),  # 600 + 10 Patients, 600+ dictionary ids of name alone
    ("contains", "王", None),
    ("", "王", "female"),  # beside a token criterion: the count is not the pre-read's
    ("", "wang", None),  # pinyin: few ids
    ("", "王伟", None),  # few ids
]


def _check(engine: Engine, factory: sessionmaker[Session]) -> None:
    for modifier, value, gender in SEARCHES:
        name = f"name:{modifier}" if modifier else "name"
        params = [(name, value)] + ([("gender", gender)] if gender else [])
        expected = _expected(modifier, value, gender)
        for size in (7, 100, 1000):
            ids, totals = _pages(factory, params, size, "accurate")
            assert ids == expected, (params, size)
            assert set(totals) == {len(expected)}
        first, totals = _pages(factory, params, 1000, None)  # the bounded count's answer
        assert first == expected and totals == [len(expected)]


def test_a_prefix_of_many_names_answers_from_the_stored_names(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The keys returned by the pre-read (at most ``PROBED_KEYS``): every page and total."""
    _store(session_factory)
    assert len(_expected("", "王")) == 610
    _check(engine, session_factory)
    if engine.dialect.name != "postgresql":
        return
    with sent_statements(engine) as sent:
        _, totals = _pages(session_factory, [("name", "王")], 20, None)
    assert totals[0] == 610
    pages = [s for s in sent if "resource.body" in s]
    assert len(pages) == 31 and len(sent) == 62  # each page and its pre-read
    assert not any(s.startswith("select count(") for s in sent)  # the pre-read counted
    # the page reads the resources by the pre-read's keys, not the arrays again
    assert all("= any (cast((select cast(%(" in s and "search_terms" not in s for s in pages)


@pytest.mark.parametrize("probed", [0, 100])
def test_past_the_keys_the_page_probes_the_ids_text(
    engine: Engine,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    probed: int,
) -> None:
    """More matches than ``PROBED_KEYS`` (and ``FEW_ROWS``): the page probes each id's
    arrays, the ids bound as the pre-read's text; the same answers."""
    monkeypatch.setattr(search_preread, "PROBED_KEYS", probed)
    monkeypatch.setattr(search_preread, "FEW_ROWS", 5)
    monkeypatch.setattr(search_module, "FEW_ROWS", 5)
    _store(session_factory)
    _check(engine, session_factory)
    if engine.dialect.name != "postgresql":
        return
    with sent_statements(engine) as sent:
        _pages(session_factory, [("name", "王")], 20, None)
    pages = [s for s in sent if "resource.body" in s]
    assert pages and all("each_terms" in s for s in pages)  # a probe per id, in the page


def test_several_criteria_with_a_prefix_of_many_names(
    engine: Engine, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``name=王`` read with ``family`` (decision 0134's joint read): its ids a CTE of the
    pre-read, their text bound back when the joint keys are more than ``FEW_ROWS``."""
    _store(session_factory)
    combos = [("王", "王"), ("李", "王"), ("王", "伟")]
    for few, sizes in ((search_preread.FEW_ROWS, (7, 1000)), (5, (1000,))):
        # past FEW_ROWS: one page only (decision 0134's probe of every criterion's ids,
        # planned on this small unanalysed store as a GIN scan per resource: seconds)
        monkeypatch.setattr(search_preread, "FEW_ROWS", few)
        monkeypatch.setattr(search_module, "FEW_ROWS", few)
        search_preshape.clear()  # the shapes were built with the other FEW_ROWS
        for family, given in combos if few > 5 else combos[:2]:
            params = [("name", given), ("family", family)]
            want = set(_expected("", given)) & set(_expected("", family, param="family"))
            want_order = [i for i in _expected("", given) if i in want]
            for size in sizes:
                ids, totals = _pages(session_factory, params, size, "accurate")
                assert ids == want_order, (params, few, size)
                assert set(totals) == {len(want_order)}


@pytest.mark.parametrize("joint_ids", [0, 10**6])
def test_the_joint_read_driven_by_a_probe_per_id_or_not_answers_the_same(
    engine: Engine,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    joint_ids: int,
) -> None:
    """The joint read of decision 0134 with every criterion in one GIN condition
    (``JOINT_IDS`` huge) or driven by the first criterion's ids probed one by one, the
    others checked on each resource's array (``JOINT_IDS`` 0; decision 0145)."""
    monkeypatch.setattr(search_preread, "JOINT_IDS", joint_ids)
    _store(session_factory)
    searches = [
        ([("name", "王"), ("family", "王")], {"name": "王", "family": "王"}),
        ([("family", "李"), ("name", "王")], {"name": "王", "family": "李"}),
        ([("name:contains", "王"), ("given", "王")], {"contains": "王", "given": "王"}),
        ([("name", "王伟"), ("family", "王"), ("given", "伟")], {"name": "王伟", "given": "伟"}),
    ]
    for params, means in searches:
        want = set(_expected("", means.get("name", ""))) if "name" in means else None
        if "contains" in means:
            want = set(_expected("contains", means["contains"]))
        assert want is not None
        for param in ("family", "given"):
            if param in means:
                want &= set(_expected("", means[param], param=param))
        order = [i for i in _expected("", "") if i in want]
        ids, totals = _pages(session_factory, params, 50, "accurate")
        assert ids == order, params
        assert set(totals) == {len(order)}
