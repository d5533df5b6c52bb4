"""What every FHIR interaction checks the same way: the type, the id, that the resource
exists and is not deleted, paging numbers, strictness about unknown parameters,
``_summary`` / ``_elements`` of a read, and the zone dates without one are read in."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from fastapi import Request
from sqlalchemy.orm import Session

from adapter.errors import GoneError, InvalidRequestError, Issue, NotFoundError, UnsupportedError
from adapter.fhir.dates import DateFormatError, parse_range
from adapter.fhir.search_params import SUPPORTED_TYPES, is_supported
from adapter.fhir.search_query import PAGING_NUMBER_EXPECTED, paging_number
from adapter.fhir.search_results import BadValue, SummaryMode, parse_elements, parse_summary
from adapter.store import Resource, resource_state

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# parameters every interaction takes (FHIR R4 http.html#parameters, search.html#summary)
GENERAL_PARAMS = frozenset({"_format", "_pretty", "_summary", "_elements"})


def check_type(resource_type: str) -> None:
    if not is_supported(resource_type):
        raise UnsupportedError(
            f"Resource type {resource_type[:80]!r} is not supported by this server "
            f"(supported: {', '.join(SUPPORTED_TYPES)})",
            location="type",
        )


def check_id(resource_id: str) -> None:
    if not ID_RE.match(resource_id):
        raise InvalidRequestError(f"{resource_id[:80]!r} is not a valid FHIR id", location="id")


def current(session: Session, resource_type: str, resource_id: str) -> Resource:
    """The stored resource row: 404 when it was never stored, 410 when it was deleted."""
    row = resource_state(session, resource_type, resource_id)
    if row is None:
        raise NotFoundError(f"{resource_type}/{resource_id} is not known", location="id")
    if row.deleted:
        raise GoneError(f"{resource_type}/{resource_id} was deleted", location="id")
    return row


def prefers_lenient(request: Request) -> bool:
    prefer = request.headers.get("prefer", "")
    tokens = {t.strip().replace(" ", "") for t in re.split(r"[;,]", prefer)}
    return "handling=lenient" in tokens


def check_known(request: Request, params: Iterable[str], known: Iterable[str]) -> list[str]:
    """Unknown parameters: a 400 naming them (strict, the default), or with
    ``Prefer: handling=lenient`` the list of those to ignore."""
    allowed = GENERAL_PARAMS | set(known)
    unknown = sorted({p for p in params if p not in allowed})
    if unknown and not prefers_lenient(request):
        message = (
            f"Parameter(s) {', '.join(unknown)} not supported here (supported: "
            f"{', '.join(sorted(allowed))}); send Prefer: handling=lenient to ignore them"
        )
        raise InvalidRequestError(
            message,
            issues=[Issue("error", "not-supported", message, location=name) for name in unknown],
        )
    return unknown


def paging_param(params: dict[str, str], name: str, default: int) -> int:
    if name not in params:
        return default
    value = params[name]
    number = paging_number(value)
    if number is None:
        message = f"{name}={value!r}: {PAGING_NUMBER_EXPECTED}"
        raise InvalidRequestError(message, issues=[Issue("error", "value", message, location=name)])
    return number


@dataclass(frozen=True, slots=True)
class PagedQuery:
    """The query of a paged non-search interaction (history, ``$everything``): checked
    against what it takes, with its page and the zone its dates are read in."""

    applied: list[tuple[str, str]]  # as asked, less what was ignored (for the paging links)
    params: dict[str, str]
    zone: tzinfo
    count: int
    offset: int

    def range(self, name: str) -> tuple[datetime, datetime] | None:
        """A date parameter as the UTC range it covers, None when not given."""
        if name not in self.params:
            return None
        return date_range_param(name, self.params[name], self.zone)

    def start(self, name: str) -> datetime | None:
        found = self.range(name)
        return found[0] if found else None


def paged_query(
    request: Request, known: Iterable[str], *, page_default: int, page_max: int
) -> PagedQuery:
    pairs = list(request.query_params.multi_items())
    ignored = check_known(request, (k for k, _ in pairs), known)
    params = dict(pairs)
    return PagedQuery(
        applied=[(k, v) for k, v in pairs if k not in ignored],
        params=params,
        zone=request_zone(request),
        count=min(paging_param(params, "_count", page_default), page_max),
        offset=paging_param(params, "_offset", 0),
    )


def subset_params(request: Request) -> tuple[SummaryMode | None, tuple[str, ...] | None]:
    """``_summary`` and ``_elements`` of a read or vread (``adapter.fhir.subset`` applies
    them). ``_summary=count`` counts the matches of a search: a read has none to count."""
    params = request.query_params
    summary: SummaryMode | None = None
    elements: tuple[str, ...] | None = None
    name = "_summary"
    try:
        if name in params:
            summary = parse_summary(params[name])
            if summary == "count":
                raise BadValue("_summary=count counts the matches of a search; a read has none")
        name = "_elements"
        if name in params:
            elements = parse_elements(params[name])
    except BadValue as exc:
        raise InvalidRequestError(
            str(exc), issues=[Issue("error", exc.code, str(exc), location=name)]
        ) from None
    return summary, elements


def request_zone(request: Request) -> tzinfo:
    """The zone the store read dates without a zone in: the consortium's (the pipeline's)."""
    pipeline = getattr(request.app.state, "pipeline", None)
    if pipeline is not None:
        return pipeline.timezone
    return ZoneInfo(request.app.state.settings.default_timezone)


def date_range_param(name: str, value: str, zone: tzinfo) -> tuple[datetime, datetime]:
    """A date / dateTime / instant parameter as the UTC range it covers."""
    try:
        return parse_range(value, zone)
    except DateFormatError as exc:
        message = f"{name}={value[:60]!r}: {exc}"
        raise InvalidRequestError(
            message, issues=[Issue("error", "value", message, location=name)]
        ) from None
