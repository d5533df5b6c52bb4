"""Outbox rows read the same before and after migration 0035 (decision 0084): its
``resource_key`` as the resource's (type, id) and its hashed ``order_key`` as the text it
stands for, so migration tests of earlier revisions compare rows of either form."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, text

from adapter.store.id_forms import key_text
from adapter.store.outbox.enqueue import order_hash


def order_texts(candidates: Iterable[str]) -> dict[int, str]:
    """hash -> text of the order keys a test may have queued."""
    return {order_hash(c): c for c in candidates}


def as_texts(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    """A stored outbox row (``SELECT *``) in 0034's form: ``resource_key`` as
    ``resource_type`` and ``resource_id``, an integer ``order_key`` as the patient's or the
    resource's own key (the one whose hash it is)."""
    if "resource_key" not in row:
        return row
    out = dict(row)
    rtype, rid, patient = conn.execute(
        text("SELECT resource_type, id, patient_key FROM resource WHERE resource_key = :k"),
        {"k": out.pop("resource_key")},
    ).one()
    out["resource_type"], out["resource_id"] = rtype, rid
    patient = key_text(patient)  # PostgreSQL from 0050: the stored bytes (decision 0123)
    texts = order_texts(t for t in (patient, f"{rtype}/{rid}") if t)
    out["order_key"] = texts[out["order_key"]]
    return out
