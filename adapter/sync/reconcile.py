"""Three-way reconciliation of one sync source and day: what the source says it produced
(its list or count), what the adapter received (the item ledger and the messages'
status), what each destination acknowledged (the outbox). Gaps are listed by business key.
"""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy.orm import Session

from adapter.store.outbox.acks import acknowledgements
from adapter.sync import ledger
from adapter.sync.config import SyncSource
from adapter.sync.fetch import Claim

QUARANTINED = "quarantined"
WARNINGS = "processed-with-warnings"
PROCESSED = "processed"


def reconcile(
    session: Session, item: SyncSource, day: str, claim: Claim | None, error: str | None
) -> dict[str, Any]:
    rows = ledger.items_of_day(session, item.id, day)
    received = {r.item_key: r for r in rows}
    acks = acknowledgements(session, [r.message_id for r in rows if r.message_id])
    statuses = [r.status for r in rows if r.op != "deleted" or r.message_id]
    destinations: dict[str, dict[str, int]] = {}
    undelivered: list[str] = []
    for row in rows:
        for destination, state in (acks.get(row.message_id or "") or {}).items():
            figures = destinations.setdefault(
                destination, {"delivered": 0, "pending": 0, "dead": 0}
            )
            figures[state] += 1
            if state == "dead":
                undelivered.append(row.item_key)
    missing: list[str] = []
    shortfall = 0
    if claim is not None and claim.keys is not None:
        missing = sorted(k for k in claim.keys - received.keys() if k not in claim.deleted)
    if claim is not None and claim.count is not None:
        shortfall = max(0, claim.count - len(received))
    quarantined = sorted(r.item_key for r in rows if r.status == QUARANTINED)
    return {
        "sync_source": item.id,
        "facility": item.facility,
        "document_kind": item.document_kind,
        "day": day,
        "place": item.place,
        "error": error,
        "source": {
            "how": claim.how if claim else None,
            "count": claim.count if claim else None,
            "listed": len(claim.keys) if claim and claim.keys is not None else None,
        },
        "received": {
            "total": len(received),
            "processed": statuses.count(PROCESSED),
            "warnings": statuses.count(WARNINGS),
            "quarantined": len(quarantined),
            "deleted": sum(1 for r in rows if r.op == "deleted"),
            "corrected": sum(1 for r in rows if r.op == "corrected"),
            "replayed": sum(1 for r in rows if r.replayed),
        },
        "destinations": dict(sorted(destinations.items())),
        "gaps": {
            "missing": missing,
            "quarantined": quarantined,
            "undelivered": sorted(set(undelivered)),
            "count_shortfall": shortfall if claim is None or claim.keys is None else len(missing),
        },
        "deleted": sorted(r.item_key for r in rows if r.op == "deleted"),
        "corrected": sorted(r.item_key for r in rows if r.op == "corrected"),
        "replayed": sorted(r.item_key for r in rows if r.replayed),
    }


def has_gaps(part: dict[str, Any]) -> bool:
    gaps = part["gaps"]
    return bool(
        gaps["missing"] or gaps["quarantined"] or gaps["undelivered"] or gaps["count_shortfall"]
    )


def volume_alert(part: dict[str, Any], history: list[int], percent: float) -> dict[str, Any] | None:
    """An alert when today's count is more than ``percent`` below the recent median."""
    if len(history) < 3:
        return None
    today = part["source"]["count"]
    if today is None:
        today = part["received"]["total"]
    median = statistics.median(history)
    if median > 0 and today < median * (1 - percent / 100):
        return {"count": today, "median": median, "days": len(history), "percent": percent}
    return None
