"""BatchWrites' held rows of other tables and its read cache under a message's rollback
(adapter/store/resources.py; decision 0050, amended)."""

from __future__ import annotations

from adapter.store.identity_tables import IdentityHistory
from adapter.store.resources import BatchWrites

HISTORY = IdentityHistory.__table__


def test_a_rolled_back_message_drops_its_held_rows_and_keeps_the_others() -> None:
    writes = BatchWrites()
    writes.add_rows(HISTORY, [{"action": "link", "patient_id": "a"}])
    writes.forget()  # the first message's savepoint was released
    mark = writes.mark()
    writes.add_rows(HISTORY, [{"action": "link", "patient_id": "b"}])
    writes.rollback(mark)
    assert writes.tables[HISTORY] == [{"action": "link", "patient_id": "a"}]


def test_a_rollback_forgets_what_was_read() -> None:
    # a read made after a write the database rolled back must not be answered again
    writes = BatchWrites()
    mark = writes.mark()
    writes.reads["adapter.identity.near"] = {"anything": object()}
    writes.rollback(mark)
    assert writes.reads == {}


def test_a_rolled_back_message_drops_its_held_updates_and_keeps_the_others() -> None:
    # the drain's message results on PostgreSQL (decision 0116)
    statement = object()  # any statement: held by identity, executed at the commit
    writes = BatchWrites()
    writes.add_updates(statement, [{"b_id": "a", "status": "processed"}])
    writes.forget()
    mark = writes.mark()
    writes.add_updates(statement, [{"b_id": "b", "status": "processed"}])
    writes.rollback(mark)
    assert writes.updates[statement] == [{"b_id": "a", "status": "processed"}]
