"""What the FHIR API disclosed to whom, into the audit log (BALP Read and Query patterns).

One record per answered read, vread, history or search: the caller (the request's, from
adapter/audit/context.py), the resource versions disclosed and the patients they are
about, and for a search the resource type and the parameter names (never their values:
names, birth dates and ID numbers are search values). Written and committed before the
answer is sent: if it cannot be kept, the answer is an error, not an unrecorded disclosure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from adapter import audit
from adapter.audit.context import ANONYMOUS, current
from adapter.audit.writer import record_now
from adapter.fhir.index_values import patient_key


def reference(body: dict[str, Any]) -> str:
    version = (body.get("meta") or {}).get("versionId")
    ref = f"{body.get('resourceType')}/{body.get('id')}"
    return f"{ref}/_history/{version}" if version else ref


def disclosed(
    request: Request,
    action: audit.AuditAction,
    bodies: Iterable[dict[str, Any]],
    *,
    interaction: str,
    resource_type: str,
    params: Sequence[tuple[str, str]] = (),
    patients: Sequence[str] = (),
    message_id: str | None = None,
    session: Session | None = None,
    **detail: str | int | None,
) -> None:
    """Record one disclosure; ``patients`` beside those the bodies are about (a raw
    message names its patients only through what it made). ``session``: the request's
    reading session, committed with the record where the database allows it
    (``record_now``)."""
    bodies = list(bodies)
    caller = current()
    patients = [*patients, *(key for body in bodies if (key := patient_key(body)))]
    names = sorted({name for name, _ in params})
    record_now(
        request.app.state.session_factory,
        audit.AuditEvent(
            action=action,
            outcome="success",
            actor=(caller.client if caller and caller.client else ANONYMOUS),
            subject=resource_type,
            correlation_id=None,
            at=datetime.now(UTC),
            detail={
                "interaction": interaction,
                "params": ",".join(names)[:500] or None,
                "results": len(bodies),
                **detail,
            },
            message_id=message_id,
            entities=tuple(reference(body) for body in bodies),
            patients=tuple(dict.fromkeys(patients)),
        ),
        session=session,
    )
