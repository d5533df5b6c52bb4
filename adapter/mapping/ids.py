"""Deterministic resource ids from business identifiers.

Re-sending a message must update, never duplicate, here and at every destination (which
receive PUTs on these ids). The id is a hash of the resource type and the business key
parts (e.g. facility, filler order number, item code; the patient for dependent
resources), formatted as a UUID so it is a valid FHIR id and looks familiar to servers.
"""

from __future__ import annotations

import hashlib

_SEPARATOR = "\x1f"  # unit separator: cannot occur in key parts taken from documents


def deterministic_id(resource_type: str, parts: list[str]) -> str:
    """Same type and parts give the same id on every machine, in every run."""
    stripped = [resource_type]  # a loop, not a generator (a function made per call)
    for p in parts:
        stripped.append(p.strip())
    return stripped_id(stripped)


def stripped_id(stripped: list[str]) -> str:
    """``deterministic_id(stripped[0], stripped[1:])`` of parts stripped already (the
    engine strips them as it reads them, decision 0149)."""
    key = _SEPARATOR.join(stripped)
    digest = bytearray(hashlib.sha256(key.encode("utf-8")).digest()[:16])
    # what str(uuid.UUID(bytes=digest[:16], version=5)) gives, without its Python-level
    # checks (per resource): the version in the high nibble of byte 6, the RFC 4122
    # variant in the top two bits of byte 8
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
