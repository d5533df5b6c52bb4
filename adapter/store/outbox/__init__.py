"""The outbox repository: the one owner of the ``outbox``, ``outbox_destination``,
``delivery_attempt`` and ``delivery_destination`` tables. Nothing else in the adapter
touches them; every function takes a Session and never commits (the caller owns the
transaction).

rows.py          OutboxRow (the one row type), AttemptRow, Settlement; states are OutboxState
names.py         the destination as an outbox_destination id; rows read with its name (0079)
enqueue.py       enqueue / enqueue_many: written in the ingest transaction
claim.py         claim (leases, per-patient order), current_bodies, extend_lease, release,
                 release_all, settle(_many), settle_coalesced(_many): the worker's side
queues.py        claim_queues: heads with the rows queued behind them (one ordered request)
prune.py         prune_batch, count_prunable: the retention of delivered rows (decision 0064)
replay.py        list_deliveries, get_delivery, attempts_of, replay_one, replay_many
destinations.py  the per-destination row (breaker state, running totals) and queue_figures
wake.py          notify / Listener: PostgreSQL LISTEN/NOTIFY that wakes idle workers

    from adapter.store import outbox
    with factory.begin() as session:
        rows = outbox.claim(session, destination="d", worker=w, now=now, lease_seconds=120,
                            limit=20)
"""

from adapter.store.models import OUTBOX_STATES, OutboxState
from adapter.store.outbox.claim import (
    ERROR_MAX,
    claim,
    current_bodies,
    extend_lease,
    next_due,
    release,
    release_all,
    settle,
    settle_coalesced,
    settle_coalesced_many,
    settle_many,
)
from adapter.store.outbox.destinations import (
    DestinationRecord,
    QueueFigure,
    add_totals,
    breaker_state,
    close_breaker,
    count_failures,
    destination_records,
    ensure,
    is_paused,
    note_failure,
    number,
    open_breaker,
    queue_figures,
    read_admission,
    read_breaker,
    set_paused,
    state_counts,
    take_over_probe,
    take_probe,
)
from adapter.store.outbox.enqueue import enqueue, enqueue_many, order_key
from adapter.store.outbox.prune import Pruned, count_prunable, prune_batch, pruned_totals
from adapter.store.outbox.queues import claim_queues
from adapter.store.outbox.replay import (
    REPLAYABLE,
    attempts_of,
    check_state,
    find_delivery,
    get_delivery,
    list_deliveries,
    replay_many,
    replay_one,
)
from adapter.store.outbox.rows import AttemptRow, OutboxRow, Settlement
from adapter.store.outbox.wake import Listener, notify

__all__ = [
    "ERROR_MAX",
    "OUTBOX_STATES",
    "REPLAYABLE",
    "AttemptRow",
    "DestinationRecord",
    "Listener",
    "OutboxRow",
    "OutboxState",
    "Pruned",
    "QueueFigure",
    "Settlement",
    "add_totals",
    "attempts_of",
    "breaker_state",
    "check_state",
    "claim",
    "claim_queues",
    "close_breaker",
    "count_failures",
    "count_prunable",
    "current_bodies",
    "destination_records",
    "enqueue",
    "enqueue_many",
    "ensure",
    "extend_lease",
    "find_delivery",
    "get_delivery",
    "is_paused",
    "list_deliveries",
    "next_due",
    "note_failure",
    "notify",
    "number",
    "open_breaker",
    "order_key",
    "prune_batch",
    "pruned_totals",
    "queue_figures",
    "read_admission",
    "read_breaker",
    "release",
    "release_all",
    "replay_many",
    "replay_one",
    "set_paused",
    "settle",
    "settle_coalesced",
    "settle_coalesced_many",
    "settle_many",
    "state_counts",
    "take_over_probe",
    "take_probe",
]
