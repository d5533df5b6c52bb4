"""``GET /metrics``: Prometheus text exposition format 0.0.4.

Written by hand rather than with prometheus_client: every figure comes from the database at
scrape time (delivery may run in other processes or hosts, so in-process counters would
show only this process's share), which leaves the library nothing to do but format a few
lines; its registry, multiprocess mode and instrumentation would go unused.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.responses import Response

from adapter import __version__
from adapter.delivery.health import DestinationStatus, destination_statuses
from adapter.mapping.translation import UNREAD
from adapter.pipeline.drain import Backlog, backlog
from adapter.store import read_only
from adapter.store.models import InboundMessage
from adapter.sync.metrics import sync_families

router = APIRouter(tags=["health"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "open", "half-open")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(
                f"{name}{{{rendered}}} {_number(value)}" if rendered else f"{name} {_number(value)}"
            )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _per_destination(
    statuses: list[DestinationStatus], value: str
) -> list[tuple[dict[str, str], float]]:
    return [({"destination": s.id}, float(getattr(s, value) or 0)) for s in statuses]


_OCCURRENCE = re.compile(r"\[\d+\]")


def unread_path(location: str) -> str:
    """A location without its occurrences (``OBX[3]-5`` -> ``OBX-5``, ``/a[1]/b[2]`` ->
    ``/a/b``): one series per place in the message layout, not per message."""
    return _OCCURRENCE.sub("", location)


def count_unread_warnings(
    rows: Iterable[tuple[str, list[dict] | None]],
) -> Counter[tuple[str, str]]:
    """(source, path) -> how many stored messages' issues say clinical content there was read
    by no rule (the unread-content warnings, docs/mapping-language.md section 14)."""
    counts: Counter[tuple[str, str]] = Counter()
    for source, issues in rows:
        for issue in issues or []:
            if issue.get("severity") == "warning" and str(issue.get("diagnostics", "")).endswith(
                UNREAD
            ):
                counts[(source, unread_path(issue.get("location") or "?"))] += 1
    return counts


def render_sync(families: list[Any]) -> str:
    """The nightly sync figures (adapter/sync/metrics.py) in the same exposition format."""
    out = Exposition()
    for name, kind, help_text, samples in families:
        out.family(name, kind, help_text, samples)
    return out.text()


def render(
    statuses: list[DestinationStatus],
    messages: dict[str, int],
    unread: Counter[tuple[str, str]] | None = None,
    waiting: Backlog | None = None,
) -> str:
    out = Exposition()
    out.family("adapter_info", "gauge", "Version of the adapter.", [({"version": __version__}, 1)])
    out.family(
        "adapter_messages",
        "gauge",
        "Inbound messages kept, by status.",
        [({"status": k}, v) for k, v in sorted(messages.items())],
    )
    waiting = waiting or Backlog(0, None)
    out.family(
        "adapter_ingest_backlog",
        "gauge",
        "Documents answered on receipt and not yet drained (status received).",
        [({}, waiting.count)],
    )
    out.family(
        "adapter_ingest_backlog_oldest_age_seconds",
        "gauge",
        "Age of the oldest document waiting for the drain (0 when none).",
        [({}, round(waiting.oldest_age_seconds(), 3))],
    )
    out.family(
        "adapter_unread_content_warnings",
        "gauge",
        "Clinical content no mapping rule read, in kept messages, by source and path.",
        [({"source": k[0], "path": k[1]}, v) for k, v in sorted((unread or {}).items())],
    )
    out.family(
        "adapter_delivery_queue_depth",
        "gauge",
        "Outbox rows not yet delivered (pending + in-flight).",
        [({"destination": s.id}, s.queue_depth) for s in statuses],
    )
    out.family(
        "adapter_delivery_in_flight",
        "gauge",
        "Outbox rows being sent now.",
        _per_destination(statuses, "in_flight"),
    )
    out.family(
        "adapter_delivery_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest undelivered outbox row (0 when none).",
        _per_destination(statuses, "oldest_pending_age_seconds"),
    )
    out.family(
        "adapter_delivery_dead_letters",
        "gauge",
        "Dead letters waiting for a replay.",
        _per_destination(statuses, "dead_letters"),
    )
    out.family(
        "adapter_delivery_attempts_total",
        "counter",
        "Delivery attempts made.",
        _per_destination(statuses, "attempts_total"),
    )
    out.family(
        "adapter_delivery_delivered_total",
        "counter",
        "Outbox rows delivered.",
        _per_destination(statuses, "delivered_total"),
    )
    out.family(
        "adapter_delivery_pruned_total",
        "counter",
        "Delivered outbox rows deleted after the outbox retention (their attempts with them).",
        _per_destination(statuses, "pruned_total"),
    )
    out.family(
        "adapter_delivery_retries_total",
        "counter",
        "Failed attempts rescheduled for a retry.",
        _per_destination(statuses, "retried_total"),
    )
    out.family(
        "adapter_delivery_dead_letters_total",
        "counter",
        "Outbox rows that became dead letters.",
        _per_destination(statuses, "dead_total"),
    )
    out.family(
        "adapter_delivery_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful delivery (0: never).",
        [
            ({"destination": s.id}, s.last_success_at.timestamp() if s.last_success_at else 0.0)
            for s in statuses
        ],
    )
    out.family(
        "adapter_delivery_breaker_state",
        "gauge",
        "Circuit breaker of the destination: 1 for its current state.",
        [
            ({"destination": s.id, "state": state}, 1.0 if s.breaker_state == state else 0.0)
            for s in statuses
            for state in BREAKER_STATES
        ],
    )
    out.family(
        "adapter_delivery_destination_up",
        "gauge",
        "1 when the destination is enabled and not degraded.",
        [({"destination": s.id}, 1.0 if s.status == "ok" else 0.0) for s in statuses],
    )
    return out.text()


@router.get("/metrics")
def metrics(request: Request) -> Response:
    state = request.app.state
    with state.session_factory() as session:
        read_only(session)
        statuses = destination_statuses(session, state.consortium, now=datetime.now(UTC))
        messages = {
            status: int(count)
            for status, count in session.execute(
                select(InboundMessage.status, func.count()).group_by(InboundMessage.status)
            )
        }
        waiting = backlog(session)
        # only messages with warnings can hold one; their issue lists are read at scrape time
        sync = render_sync(sync_families(session))
        unread = count_unread_warnings(
            session.execute(
                select(InboundMessage.source_system, InboundMessage.issues).where(
                    InboundMessage.status == "processed-with-warnings"
                )
            )
        )
    return Response(render(statuses, messages, unread, waiting) + sync, media_type=CONTENT_TYPE)
