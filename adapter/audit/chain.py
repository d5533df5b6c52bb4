"""The hash chain over the audit log (docs/audit.md, "Tamper evidence").

Each record's ``body`` is the canonical JSON of the event (sorted keys, no spaces: the same
event always gives the same bytes); its ``hash`` is ``sha256(prev_hash + body)``, where
``prev_hash`` is the hash of the record before it (``GENESIS`` for the first). Changing,
inserting or removing one record breaks the chain at that record; a signed checkpoint
(adapter/audit/signing.py) fixes the head so that rewriting the whole tail shows too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

GENESIS = "0" * 64
MAX_REFERENCE = 160  # audit_link.reference


def canonical(body: Mapping[str, Any]) -> str:
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def links_of(body: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (kind, reference) rows of audit_link a record's body implies."""
    found = {("patient", p[:MAX_REFERENCE]) for p in body.get("patients") or ()}
    found |= {("entity", e[:MAX_REFERENCE]) for e in body.get("entities") or ()}
    return found
