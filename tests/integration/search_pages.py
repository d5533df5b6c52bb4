"""Every page of a store search, for tests that compare answers across storage forms."""

from __future__ import annotations

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
