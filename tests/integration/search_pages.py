"""Every page of a store search, for tests that compare answers across storage forms."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.search_query import parse_search
from adapter.store.search import find


def every_page(
    factory: sessionmaker[Session], rtype: str, params: list[tuple[str, str]], *, page_size: int
) -> list[str]:
    """The ids a search answers, read page by page of ``page_size`` (so that a sort's paging
    is exercised too); the accurate total must count them all."""
    with factory() as session:
        parsed = parse_search(rtype, [*params, ("_count", str(page_size))])
        ids: list[str] = []
        offset = 0
        while True:
            page = find(
                session,
                [rtype],
                parsed.criteria,
                count=page_size,
                offset=offset,
                sort=parsed.sort,
                total="accurate",
            )
            ids.extend(b["id"] for b in page.bodies)
            if not page.has_more:
                break
            offset += page_size
        assert page.total == len(ids)
        return ids


@contextmanager
def sent_statements(
    engine: Engine, keep: Callable[[str], bool] | None = None
) -> Iterator[list[str]]:
    """The statements ``engine`` sends meanwhile, lower-cased (which form a search took);
    ``keep``: only those it keeps (given each statement as sent)."""
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if keep is None or keep(statement):
            statements.append(statement.lower())

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", capture)
