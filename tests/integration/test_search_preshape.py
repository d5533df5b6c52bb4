"""A search's pre-read kept per shape, its values bound (decision 0142). On PostgreSQL a
plain string search (a prefix, ``:exact``, ``:contains``; one value or several) builds its
pre-read once per shape and binds each search's values: every value must answer what its
own criterion means, whichever value built the shape; two shapes never share a statement;
a value too long for the shape's tree builds its own. SQLite keeps no shape and answers
the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.index_values import normalize_text
from adapter.store import save_resources, search_preshape
from tests.integration.search_pages import every_page

T0 = datetime(2026, 12, 7, 4, tzinfo=UTC)
FAMILIES = ("张", "李", "王", "Zhang", "欧阳", "张")
GIVENS = ("伟", "秀英", "伟明", "Wei", "敏", "50%_off")
LONG = "张" + "长" * 240  # past index_keys.KEY_CHARS: cut to a key


def _names(n: int) -> tuple[str, str]:
    family = LONG if n == 17 else FAMILIES[n % 6]
    return family, GIVENS[(n // 2) % 6]


def _store(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        for n in range(36):
            family, given = _names(n)
            body: dict[str, Any] = {
                "resourceType": "Patient",
                "id": f"p{n:02d}",
                "name": [{"text": family + given, "family": family, "given": [given]}],
            }
            save_resources(session, [body], message_id=None, now=T0 + timedelta(minutes=n))


def _expected(param: str, modifier: str, values: list[str]) -> set[str]:
    """What the criterion means, from the stored names (FHIR string matching)."""
    found = set()
    for n in range(36):
        family, given = _names(n)
        texts = {"family": [family], "given": [given], "name": [family + given, family, given]}
        for text in texts[param]:
            for value in values:
                if modifier == "exact":
                    hit = text == value
                elif modifier == "contains":
                    hit = normalize_text(value) in normalize_text(text)
                else:
                    hit = normalize_text(text).startswith(normalize_text(value))
                if hit:
                    found.add(f"p{n:02d}")
    return found


SHAPES = [
    ("family", "", ["张", "李", "zhang", "欧", "王", "nobody", "张"]),
    ("name", "", ["张伟", "李秀", "王伟明", "zhang wei", "欧阳敏", "50%", "50%_"]),
    ("given", "exact", ["伟", "秀英", "Wei", "wei", "伟明", "50%_off"]),
    ("name", "contains", ["伟", "秀", "阳", "ei", "%", "_"]),
    ("family", "", ["张,李", "王,zhang", "欧阳,nobody", "李,李"]),
]


@pytest.mark.parametrize(("param", "modifier", "values"), SHAPES)
def test_a_kept_shape_answers_each_value(
    engine: Engine,
    session_factory: sessionmaker[Session],
    param: str,
    modifier: str,
    values: list[str],
) -> None:
    """Value after value in one shape (the first builds it, the others bind theirs): each
    answers its own criterion, page by page with accurate totals; a ``%`` or ``_`` is a
    character, not a pattern."""
    _store(session_factory)
    name = f"{param}:{modifier}" if modifier else param
    for value in values:
        for size in (2, 50):
            found = every_page(session_factory, "Patient", [(name, value)], page_size=size)
            assert set(found) == _expected(param, modifier, value.split(",")), (name, value)
            assert len(found) == len(set(found))
    kept = search_preshape.kept()
    if engine.dialect.name == "postgresql":
        assert len(kept) == 1  # one shape, whatever the value (the page size is bound)
    else:
        assert kept == []  # SQLite: its pre-read is its parameters' member alone


def test_shapes_do_not_share_a_statement(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """A prefix, ``:exact``, ``:contains``, another parameter, two values, two criteria:
    each its own statement, each answering its own criterion."""
    _store(session_factory)
    searches = [
        [("family", "张")],
        [("family:exact", "张")],
        [("family:contains", "张")],
        [("given", "张")],
        [("family", "张,王")],
        [("family", "张"), ("given", "伟")],
        [("family", "李")],  # the first shape again
    ]
    answers = [set(every_page(session_factory, "Patient", s, page_size=5)) for s in searches]
    assert answers[0] == _expected("family", "", ["张"])
    assert answers[1] == _expected("family", "exact", ["张"]) and answers[1] != answers[0]
    assert answers[2] == _expected("family", "contains", ["张"])
    assert answers[3] == set()
    assert answers[4] == _expected("family", "", ["张", "王"])
    assert answers[5] == answers[0] & _expected("given", "", ["伟"])
    assert answers[6] == _expected("family", "", ["李"])
    kept = search_preshape.kept()
    if engine.dialect.name != "postgresql":
        assert kept == []
        return
    assert len(kept) == 6 and len({id(statement) for _, statement in kept}) == 6
    # the text with the constants each binds (``family`` and ``given`` differ by a bound
    # parameter's name only)
    compiled = [statement.compile(engine) for _, statement in kept]
    assert len({(str(c), tuple(sorted(c.params.items()))) for c in compiled}) == 6


def test_a_long_value_builds_its_own(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """A value of ``KEY_CHARS`` characters or more compares a cut key and the whole text:
    no shape kept for it, its answer its own; a short value of its form after it: kept."""
    _store(session_factory)
    assert every_page(session_factory, "Patient", [("family", LONG)], page_size=5) == ["p17"]
    exact = every_page(session_factory, "Patient", [("family:exact", LONG)], page_size=5)
    assert exact == ["p17"]
    assert search_preshape.kept() == []
    found = every_page(session_factory, "Patient", [("family", "张长")], page_size=5)
    assert found == ["p17"]
    assert len(search_preshape.kept()) == (1 if engine.dialect.name == "postgresql" else 0)
