"""Figures of the latest finished sync run of each sync source, for ``GET /metrics``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.models import SyncRun

Family = tuple[str, str, str, list[tuple[dict[str, str], float]]]


def sync_families(session: Session, *, runs: int = 50) -> list[Family]:
    latest: dict[str, tuple[SyncRun, dict[str, Any]]] = {}
    found = session.scalars(
        select(SyncRun)
        .where(SyncRun.state == "done")
        .order_by(SyncRun.started_at.desc())
        .limit(runs)
    )
    for run in found:
        for part in (run.report or {}).get("sources", []):
            latest.setdefault(part["sync_source"], (run, part))
    when, code, said, received, gaps, alerts, up = [], [], [], [], [], [], []
    for source, (run, part) in sorted(latest.items()):
        label = {"sync_source": source}
        finished = run.finished_at or run.started_at
        when.append((label, finished.timestamp()))
        code.append((label, float(run.exit_code or 0)))
        up.append((label, 0.0 if part.get("error") else 1.0))
        if part["source"]["count"] is not None:
            said.append((label, float(part["source"]["count"])))
        for status in ("processed", "warnings", "quarantined", "deleted", "corrected"):
            received.append(({**label, "status": status}, float(part["received"][status])))
        for kind in ("missing", "quarantined", "undelivered"):
            gaps.append(({**label, "kind": kind}, float(len(part["gaps"][kind]))))
        alerts.append((label, 1.0 if part.get("volume_alert") else 0.0))
    return [
        (
            "adapter_sync_last_run_timestamp_seconds",
            "gauge",
            "Unix time the last sync run of the source finished.",
            when,
        ),
        (
            "adapter_sync_last_exit_code",
            "gauge",
            "Exit code of that run: 0 reconciled, 1 gaps, 2 unreachable.",
            code,
        ),
        ("adapter_sync_source_up", "gauge", "1 when the source could be read in that run.", up),
        (
            "adapter_sync_source_count",
            "gauge",
            "What the source said it produced on the run's day.",
            said,
        ),
        (
            "adapter_sync_received",
            "gauge",
            "Documents of the run's day the adapter received, by outcome.",
            received,
        ),
        (
            "adapter_sync_gaps",
            "gauge",
            "Gaps of the run's day by kind (listed by key in the report).",
            gaps,
        ),
        (
            "adapter_sync_volume_alert",
            "gauge",
            "1 when the day's count fell well below the recent median.",
            alerts,
        ),
    ]
