"""Values of a document that the store keeps in a column of bounded length.

The 转诊台账 (``referral_ledger``) copies a few values of a referral's resources into
``varchar(n)`` columns: the slip number, departments, doctors' names, codes. PostgreSQL
refuses a longer value (SQLSTATE 22001, after the message's resources were written) and
SQLite stores it whole, so the same slip was quarantined without a location on one and
stored on the other. These values are checked here, before anything is written, the same
on both databases: a value longer than its column is an error naming the element, the
column and the lengths (never the value: it can be a name), located in the input when
the reader can find it (``row 3, column 转诊单号``, ``PRD[1]-2``, an XPath, a JSON path).

Each bound reads the element the way ``adapter/referral/ledger.py`` reads it; the limits
are the columns' own (``ReferralLedger``), so a wider column widens the check. The
patient's masked name is not checked: the ledger shortens the mask to its column (a mask
loses nothing the resource does not keep).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column

from adapter.errors import Issue
from adapter.referral.ledger import performer_department, shown_name
from adapter.referral.rules import BUSINESS_SYSTEM, REASON_SYSTEM
from adapter.store.lengths import limit_of
from adapter.store.models import ReferralLedger

_LEDGER = ReferralLedger.__table__.c

# (expression, value) pairs of one resource
Reader = Callable[[dict[str, Any]], Iterator[tuple[str, str]]]
# where a value stands in the input (``row 3, column 转诊单号``), None when not found
Locate = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Bound:
    column: Column[Any]
    read: Reader
    part: str = ""  # the part of the element that is stored, when not all of it

    @property
    def limit(self) -> int | None:
        return limit_of(self.column)

    @property
    def name(self) -> str:
        return f"{self.column.table.name}.{self.column.name}"


@dataclass(frozen=True, slots=True)
class TooLong:
    """One value longer than the column it is stored in."""

    resource: str  # "ServiceRequest/<id>"
    expression: str  # "ServiceRequest.requisition.value"
    column: str  # "referral_ledger.slip_number"
    limit: int
    length: int
    value: str = field(repr=False)  # only to find it in the input: never put in a text
    part: str = ""

    def issue(self, location: str | None) -> Issue:
        return Issue(
            "error",
            "value",
            f"{self.resource}: {self.part}{self.expression} is {self.length} characters; "
            f"at most {self.limit} are kept ({self.column})",
            location=location,
            expression=self.expression,
        )


def _strings(node: Any, path: str, keys: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """The strings at ``keys`` below ``node`` (lists walked with their indexes)."""
    if not keys:
        if isinstance(node, str):
            yield path, node
        return
    value = node.get(keys[0]) if isinstance(node, dict) else None
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}.{keys[0]}[{i}]", keys[1:])
    elif value is not None:
        yield from _strings(value, f"{path}.{keys[0]}", keys[1:])


def _at(*keys: str) -> Reader:
    def read(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
        return _strings(resource, str(resource.get("resourceType")), keys)

    return read


def _names(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for i, name in enumerate(resource.get("name") or []):
        shown = shown_name(name)
        if shown:
            yield f"{resource['resourceType']}.name[{i}]", shown


def _performer_departments(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for path, display in _at("performer", "display")(resource):
        department = performer_department(display)
        if department:
            yield path, department


def _coded(system: str, key: str) -> Reader:
    def read(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
        concept = resource.get(key)
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for i, coding in enumerate(codings if isinstance(codings, list) else []):
            if isinstance(coding, dict) and coding.get("system") == system:
                code = coding.get("code")
                if isinstance(code, str):
                    yield f"{resource['resourceType']}.{key}.coding[{i}].code", code

    return read


BOUNDS: dict[str, tuple[Bound, ...]] = {
    "ServiceRequest": (
        Bound(_LEDGER.slip_number, _at("requisition", "value")),
        Bound(_LEDGER.receiver_department, _performer_departments, "the department in "),
    ),
    "Task": (
        Bound(_LEDGER.slip_number, _at("identifier", "value")),
        Bound(_LEDGER.status, _at("status")),
        Bound(_LEDGER.business_status, _coded(BUSINESS_SYSTEM, "businessStatus")),
        Bound(_LEDGER.rejection_reason, _coded(REASON_SYSTEM, "statusReason")),
    ),
    # a requester's or owner's department and doctor (sender_* and receiver_* alike)
    "PractitionerRole": (Bound(_LEDGER.sender_department, _at("specialty", "text")),),
    "Practitioner": (Bound(_LEDGER.sender_doctor, _names),),
    "Patient": (Bound(_LEDGER.sex, _at("gender")),),
}


def too_long(resource: dict[str, Any]) -> list[TooLong]:
    """The values of ``resource`` longer than the column the store keeps them in."""
    bounds = BOUNDS.get(str(resource.get("resourceType")))
    if not bounds:
        return []
    found = []
    for bound in bounds:
        limit = bound.limit
        if limit is None:
            continue
        for expression, value in bound.read(resource):
            if len(value) > limit:
                key = f"{resource.get('resourceType')}/{resource.get('id')}"
                found.append(
                    TooLong(key, expression, bound.name, limit, len(value), value, bound.part)
                )
    return found
