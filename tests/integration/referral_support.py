"""Shared by the referral loop tests: the example consortium routing by care (no static
routes), so that each change of a referral Task goes to both its parties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import Outbox

ROOT = Path(__file__).resolve().parents[2]
SENDER, RECEIVER, OTHER = (
    "shiqiao-township-centre",
    "qingshan-county-hospital",
    "liuhe-township-centre",
)
UP_SLIP = ROOT / "fixtures/xml/referral/shiqiao-his/up-slip.xml"
PATCH_TYPE = {"Content-Type": "application/json-patch+json"}


def consortium_by_care(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    data.pop("routes")
    for facility in data["facilities"]:
        for destination in facility["destinations"]:
            destination["enabled"] = True  # queued, not delivered: no worker runs here
    path = tmp_path / "consortium.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def as_facility(facility: str, **headers: str) -> dict[str, str]:
    return {"X-Facility": facility, **PATCH_TYPE, **headers}


def status_ops(status: str, business: str | None = None, reason: str | None = None) -> list[Any]:
    from adapter.referral.machine import business_status
    from adapter.referral.rules import REASON_SYSTEM

    ops: list[dict[str, Any]] = [{"op": "replace", "path": "/status", "value": status}]
    if business:
        ops.append({"op": "add", "path": "/businessStatus", "value": business_status(business)})
    if reason:
        ops.append(
            {
                "op": "add",
                "path": "/statusReason",
                "value": {"coding": [{"system": REASON_SYSTEM, "code": reason}]},
            }
        )
    return ops


def outbox_of(factory: sessionmaker[Session], ref: str) -> list[tuple[str, int]]:
    """(destination, version) of every outbox row of ``Type/id``, in order."""
    kind, rid = ref.split("/", 1)
    with factory() as session:
        rows = session.execute(
            select(Outbox.destination, Outbox.version_id)
            .where(Outbox.resource_type == kind, Outbox.resource_id == rid)
            .order_by(Outbox.id)
        ).all()
    return [(r.destination, r.version_id) for r in rows]


def pipeline_for(config: Path, factory: sessionmaker[Session]) -> Any:
    """The real pipeline on the consortium file ``config`` and the repository's mappings."""
    from adapter.consortium import load_consortium
    from adapter.pipeline import Pipeline, Translator

    translator = Translator(
        load_consortium(config),
        mappings_dir=ROOT / "mappings",
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    return Pipeline.of(translator, factory)
