"""Delivery from the outbox: claiming, retry policy, circuit breaker, replay, health.

claim.py     which rows are due and whose they are (leases, per-patient order)
policy.py    the retry schedule of a destination (tenacity), Retry-After
breaker.py   the circuit breaker per destination, shared by every worker
worker.py    DeliveryWorker: claim -> send -> record, in loops or until drained
service.py   building a worker from the consortium; the SQLite one-worker lock;
             the background worker of ``adapter serve``
replay.py    listing deliveries and sending them again
health.py    per destination figures for /health and /metrics
commands.py  the ``adapter worker``, ``deliveries`` and ``replay`` commands
"""
