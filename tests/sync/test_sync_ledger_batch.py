"""The sync ledger written a batch at a time (decision 0060): the batch's rows read once,
the same key twice in one batch finding its first row, a key already there updated as
one by one. Runs on SQLite and, in the ``-m db`` pass, on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import SyncItem
from adapter.sync import ledger

NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


def _record(session: Session, known: dict[str, SyncItem] | None, key: str, sha: str, **kw: Any):
    values: dict[str, Any] = {
        "source": "lab",
        "facility": "f1",
        "kind": "lab-report",
        "key": key,
        "day": "2026-11-20",
        "op": "new",
        "sha256": sha,
        "message_id": None,
        "status": None,
        "run_id": "run-1",
        "replayed": False,
        "now": NOW,
    }
    values.update(kw)
    return ledger.record_item(session, known=known, **values)


def _rows(factory: sessionmaker[Session]) -> dict[str, tuple[str, int, str | None]]:
    with factory() as session:
        return {
            r.item_key: (r.op, r.versions, r.sha256)
            for r in session.scalars(select(SyncItem).order_by(SyncItem.item_key))
        }


def test_a_batch_writes_what_one_key_at_a_time_writes(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:  # a key already there from an earlier batch
        assert _record(session, None, "k1", "a" * 64) == "new"
    ops = []
    with session_factory.begin() as session:
        known = ledger.items_to_record(session, "lab", ["k1", "k2", "k2", "k3"])
        assert set(known) == {"k1"}
        ops.append(_record(session, known, "k1", "b" * 64))  # different bytes: corrected
        ops.append(_record(session, known, "k2", "c" * 64))
        ops.append(_record(session, known, "k2", "d" * 64))  # twice in the batch
        ops.append(_record(session, known, "k3", None, op="deleted"))
    assert ops == ["corrected", "new", "corrected", "deleted"]
    assert _rows(session_factory) == {
        "k1": ("corrected", 2, "b" * 64),
        "k2": ("corrected", 2, "d" * 64),
        "k3": ("deleted", 1, None),
    }
    # the same again, one key at a time (no ``known``), gives the same rows
    with session_factory.begin() as session:
        for key, sha in (("k1", "b" * 64), ("k2", "d" * 64)):
            assert _record(session, None, key, sha) == "corrected"
    assert _rows(session_factory)["k2"] == ("corrected", 2, "d" * 64)
