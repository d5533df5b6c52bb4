"""The reminders shown (接诊历史提醒 at encounter start, 开单重复提醒 at ordering): each
``$recognisable`` answer invoked by POST is logged, one row per (patient, order or
encounter, item, trigger), the first showing kept. An item with a recognisable result
shown is *eligible* for the 互认率 (adapter/recognition/rate.py). When the doctor opens a
prior result from the reminder (``$recognition-viewed``), the row records it (已查阅).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapter.recognition.catalogue import Catalogue
from adapter.recognition.query import ItemAnswer
from adapter.store.models import RecognitionReminder

Trigger = Literal["encounter", "order"]


@dataclass(frozen=True, slots=True)
class Shown:
    patient_id: str
    context: str  # the order number (ordering) or the encounter number (encounter start)
    trigger: Trigger
    facility_id: str
    doctor: str | None
    department: str | None = None


def log_shown(
    session: Session,
    catalogue: Catalogue,
    shown: Shown,
    answers: list[ItemAnswer],
    *,
    now: datetime,
) -> int:
    """Log the items of an answer (those in the catalogue); returns how many were new."""
    codes = sorted({a.item.code for a in answers if a.item is not None})
    if not codes:
        return 0
    r = RecognitionReminder
    known = set(
        session.execute(
            select(r.item_code).where(
                r.patient_id == shown.patient_id,
                r.context == shown.context,
                r.trigger == shown.trigger,
                r.item_code.in_(codes),
            )
        ).scalars()
    )
    added = 0
    for answer in answers:
        if answer.item is None or answer.item.code in known:
            continue
        known.add(answer.item.code)
        session.add(
            RecognitionReminder(
                patient_id=shown.patient_id,
                context=shown.context,
                item_code=answer.item.code,
                trigger=shown.trigger,
                facility_id=shown.facility_id,
                doctor=shown.doctor,
                department=shown.department,
                recognisable=bool(answer.recognisable),
                edition=catalogue.edition,
                shown_at=now,
            )
        )
        added += 1
    session.flush()
    return added


def log_viewed(
    session: Session, patient_id: str, context: str, item_code: str, result: str, *, at: datetime
) -> int:
    """A doctor opened ``result``, shown by the reminder for (patient, context, item): 已查阅.
    The first view is kept; returns how many reminder rows were shown for that item (0:
    nothing was shown, so nothing can have been viewed)."""
    r = RecognitionReminder
    shown = [r.patient_id == patient_id, r.context == context, r.item_code == item_code]
    found = len(session.execute(select(r.id).where(*shown)).all())
    if found:
        session.execute(
            update(r)
            .where(*shown, r.viewed_at.is_(None))
            .values(viewed_at=at, viewed_result=result[:130])
        )
    return found
