"""Deterministic resource ids from business identifiers.

Re-sending a message must update, never duplicate, here and at every destination (which
receive PUTs on these ids). The id is a hash of the resource type and the business key
parts (e.g. facility, filler order number, item code; the patient for dependent
resources), formatted as a UUID so it is a valid FHIR id and looks familiar to servers.
"""

from __future__ import annotations

import hashlib
import uuid

_SEPARATOR = "\x1f"  # unit separator: cannot occur in key parts taken from documents


def deterministic_id(resource_type: str, parts: list[str]) -> str:
    """Same type and parts give the same id on every machine, in every run."""
    key = _SEPARATOR.join([resource_type, *(p.strip() for p in parts)])
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))
