"""When the database refuses what a message produced: which kind of failure, and where.

A storage failure is either the database being unavailable (connection lost, server down,
out of disk: nothing can be kept, the sender must send again) or the database refusing
this data (a value too long for an index, a value a constraint forbids, a text the driver
cannot send): then the message itself can still be kept, quarantined with the reason.
``locate_refusal`` finds the resource, and the search parameter / element path, that the
database refuses, by storing the message's resources again one by one inside savepoints
that are always rolled back.

Reasons name the exception class, the SQLSTATE and schema names (constraint, table,
column), never the database's message text: that can quote the refused value (a name,
an ID number).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from adapter.fhir.index_values import elements, index_values
from adapter.fhir.search_params import RESOURCES
from adapter.store.models import Resource
from adapter.store.resources import index_row, insert_index_rows, save_resources

_resource = Resource.__table__

# PostgreSQL SQLSTATE classes that mean "this data", not "this server": data exception,
# integrity constraint violation, program limit exceeded (an index row too large)
_REFUSED_CLASSES = ("22", "23", "54")
_UNIQUE = "23505"
_SQLITE_UNIQUE = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
_SQLITE_REFUSED = ("SQLITE_TOOBIG", "SQLITE_MISMATCH", "SQLITE_RANGE")


def is_unique_violation(exc: BaseException) -> bool:
    """Two transactions inserted the same key at once (the later one can be retried)."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) == _UNIQUE:
        return True
    return getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE


def is_refusal(exc: BaseException) -> bool:
    """The database refused this data (as opposed to being unreachable or overloaded)."""
    if not isinstance(exc, SQLAlchemyError):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return False
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str) and state:
        return state[:2] in _REFUSED_CLASSES
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        return name.startswith("SQLITE_CONSTRAINT") or name in _SQLITE_REFUSED
    # a driver that refuses a value before sending it (psycopg: a NUL character in text)
    return isinstance(exc, DataError | IntegrityError)


def describe(exc: BaseException) -> str:
    """``CheckViolation (SQLSTATE 23514, constraint ck_x, table search_index)``: no values."""
    orig = getattr(exc, "orig", None) or exc
    parts: list[str] = []
    state = getattr(orig, "sqlstate", None)
    if state:
        parts.append(f"SQLSTATE {state}")
    errorname = getattr(orig, "sqlite_errorname", None)
    if errorname:
        parts.append(errorname)
    diag = getattr(orig, "diag", None)
    for label, attribute in (
        ("constraint", "constraint_name"),
        ("table", "table_name"),
        ("column", "column_name"),
    ):
        value = getattr(diag, attribute, None) if diag is not None else None
        if value:
            parts.append(f"{label} {value}")
    return f"{type(orig).__name__} ({', '.join(parts)})" if parts else type(orig).__name__


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the database refused: a resource, and the index value of it if that was it."""

    resource: str | None  # "Observation/<id>"
    param: str | None  # the search parameter whose index row was refused
    paths: tuple[str, ...]  # element paths of that parameter present in the resource
    reason: str  # describe() of the exception

    @property
    def expression(self) -> str | None:
        return ", ".join(self.paths) if self.paths else None

    def text(self) -> str:
        if self.resource is None:
            where = "what the message produced"
        elif self.param is None:
            where = self.resource
        else:
            where = f"{self.resource}, search index of {self.param}"
            if self.paths:
                where += f" ({self.expression})"
        return f"the database refused to store {where}: {self.reason}"


def locate_refusal(
    session: Session,
    resources: list[dict[str, Any]],
    failure: BaseException,
    *,
    message_id: str | None,
    now: datetime,
    facility_id: str | None,
    zone: tzinfo,
) -> Refusal:
    """The resource (and index value) the database refuses, found by trying each again.

    Every try runs in a savepoint that is rolled back: nothing of it stays in ``session``.
    A refusal that no single resource reproduces is reported against the message.
    """
    for resource in resources:
        trial = session.begin_nested()
        try:
            save_resources(
                session,
                [resource],
                message_id=message_id,
                now=now,
                facility_id=facility_id,
                zone=zone,
                with_index=False,
            )
        except SQLAlchemyError as exc:
            trial.rollback()
            if not is_refusal(exc):
                raise
            return Refusal(_key(resource), None, (), describe(exc))
        try:
            refused = _refused_index_value(session, resource, zone)
        finally:
            trial.rollback()
        if refused is not None:
            return refused
    return Refusal(None, None, (), describe(failure))


def _refused_index_value(
    session: Session, resource: dict[str, Any], zone: tzinfo
) -> Refusal | None:
    rtype, rid = resource["resourceType"], resource["id"]
    # the resource row the trial save (still open) wrote: the index rows' foreign key
    rkey = session.execute(
        select(_resource.c.resource_key).where(
            _resource.c.resource_type == rtype, _resource.c.id == rid
        )
    ).scalar_one()
    for value in index_values(resource, zone):
        trial = session.begin_nested()
        try:
            # transient: an unchanged resource's stored rows are still there
            insert_index_rows(session, [index_row(rtype, rkey, value)], transient=True)
        except SQLAlchemyError as exc:
            trial.rollback()
            if not is_refusal(exc):
                raise
            return Refusal(
                _key(resource), value.param, _paths(resource, value.param), describe(exc)
            )
        trial.rollback()
    return None


def _paths(resource: dict[str, Any], param: str) -> tuple[str, ...]:
    rtype = resource["resourceType"]
    search = RESOURCES.get(rtype)
    if search is None or param not in search.params:
        return ()
    return tuple(
        f"{rtype}.{path}" for path in search.params[param].paths if elements(resource, path)
    )


def _key(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"
