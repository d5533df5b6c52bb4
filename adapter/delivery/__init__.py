"""Delivery from the outbox: the worker, its retry policy and circuit breaker, health.

worker.py      DeliveryWorker: claim -> send through the destination -> settle, in loops
               or until drained
settlement.py  what became of one row: delivered, retry (when), dead (why); the tally
lease.py       keeping claimed rows this worker's during a slow send
policy.py      the retry schedule of a destination (tenacity), Retry-After
breaker.py     the circuit breaker per destination, shared by every worker
service.py     building a worker from the consortium; the SQLite one-worker lock;
               the background worker of ``adapter serve``
health.py      per destination figures for /health and /metrics
commands.py    the ``adapter worker``, ``deliveries`` and ``replay`` commands

The SQL (claims, leases, settlements, replays, breaker rows, queue figures) is in the
outbox repository, :mod:`adapter.store.outbox`; the transports in :mod:`adapter.outbound`.
Delivery depends on both; neither depends on delivery.
"""
