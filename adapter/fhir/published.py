"""Conformance resources the adapter itself defines (its own CodeSystems), served by the store.

They are shipped as JSON files in ``adapter/data/fhir/`` and written into the store at
start-up, so ``GET /fhir/CodeSystem/{id}`` answers with them and a code's system URL in a
produced resource can be resolved. Writing them again with unchanged content keeps their
version (the store compares content).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from adapter.recognition.catalogue import Catalogue

from adapter.store import save_resources

_PACKAGE = "adapter.data"


def published_resources(recognition: Catalogue | None = None) -> list[dict[str, Any]]:
    """Every resource file in adapter/data/fhir/, in name order, then the CodeSystems of the
    referral state machine's table (adapter/data/referral-states.yaml: one source for the
    codes the machine checks and the codes served), then the recognition code systems (with
    the catalogue's items, marks and reasons when ``recognition`` is configured)."""
    from adapter.recognition.code_systems import code_systems as recognition_systems
    from adapter.referral.rules import code_systems

    folder = resources.files(_PACKAGE).joinpath("fhir")
    return [
        json.loads(item.read_text(encoding="utf-8"))
        for item in sorted(folder.iterdir(), key=lambda i: i.name)
        if item.name.endswith(".json")
    ] + [*code_systems(), *recognition_systems(recognition)]


def publish(
    factory: sessionmaker[Session],
    *,
    now: datetime | None = None,
    recognition: Catalogue | None = None,
) -> list[str]:
    """Store the adapter's own conformance resources; returns their ``Type/id``."""
    items = published_resources(recognition)
    with factory.begin() as session:
        saved = save_resources(session, items, message_id=None, now=now or datetime.now(UTC))
    return [f"{s.resource_type}/{s.id}" for s in saved]
