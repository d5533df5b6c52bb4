"""audit_link.reference in a compact stored form (decision 0074).

A link names a resource or a patient as ``Type/<id>`` or ``Type/<id>/_history/<n>``; in
the bench's lab messages 57 bytes on average, and every link is stored twice (the key and
the ``seq`` index). A reference whose id is a lowercase UUID (the adapter's own ids) and
whose type is one of ``TYPES`` is stored as 18 bytes, plus the version::

    0x01  <type code>  <the UUID's 16 bytes>  [0x00 <the version's text, UTF-8>]

anything else as its UTF-8 text (a leading 0x01 / 0x02 byte escaped by a 0x02). Reading
gives the exact text back, so every reader (verify, archive, disclosures, search, the
AuditEvent API) sees references as before, and the search for an exact reference is an
equality on the stored form. The search for every version of an entity is one key range:
a packed entity's versions all start with its 18 bytes (``versions``: every
``/_history/<anything>`` after a packed reference is packed too, so none is left out of
the range); a text one's as before (``<ref>/_history/``, bytewise). The codes are only
ever appended: a stored code must keep its type.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import LargeBinary, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# code = position + 1; append only
TYPES = (
    "Patient",
    "Observation",
    "DiagnosticReport",
    "Encounter",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "ServiceRequest",
    "Specimen",
    "Condition",
    "Composition",
    "DocumentReference",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
    "AllergyIntolerance",
    "Immunization",
    "CarePlan",
    "Location",
    "Bundle",
    "Binary",
    "Provenance",
    "Task",
    "Coverage",
    "RelatedPerson",
    "EpisodeOfCare",
    "ImagingStudy",
    "Consent",
    "Appointment",
    "Claim",
)
_CODE = {name: code for code, name in enumerate(TYPES, start=1)}
PACKED, ESCAPE, VERSION = b"\x01", b"\x02", b"\x00"
_FORM = re.compile(
    r"([A-Za-z]{1,64})/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"(?:/_history/(.*))?",
    re.DOTALL,
)


def pack(reference: str) -> bytes:
    """The stored form of ``reference``."""
    found = _FORM.fullmatch(reference)
    if found is not None and found[1] in _CODE:
        head = PACKED + bytes((_CODE[found[1]],)) + bytes.fromhex(found[2].replace("-", ""))
        return head if found[3] is None else head + VERSION + found[3].encode()
    text = reference.encode()
    return ESCAPE + text if text[:1] in (PACKED, ESCAPE) else text


def unpack(stored: bytes) -> str:
    """The reference ``stored`` is the form of (a value changed in the database reads as
    some text, never as an error: verify then finds its links differ from the record)."""
    if stored[:1] == PACKED and len(stored) >= 18 and 0 < stored[1] <= len(TYPES):
        h = stored[2:18].hex()
        text = f"{TYPES[stored[1] - 1]}/{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        rest = stored[18:]
        if not rest:
            return text
        if rest[:1] == VERSION:
            return f"{text}/_history/{rest[1:].decode(errors='replace')}"
    if stored[:1] == ESCAPE:
        stored = stored[1:]
    return stored.decode(errors="replace")


def versions(reference: str) -> tuple[bytes, bytes, bytes | None]:
    """The stored forms of every version of the entity ``reference`` (one without
    ``/_history/``): ``(low, high, versioned)``: the key range ``low <= x < high``, in which
    a stored form is ``reference`` itself or, when ``versioned`` is not None, ``>=
    versioned``; with ``versioned`` None every form in the range is one of its versions."""
    low = pack(reference)
    if low[:1] == PACKED:  # 18 bytes, then nothing or 0x00 and the version
        return low, low + b"\x01", None
    return low, pack(reference + "/_history0"), pack(reference + "/_history/")


class PackedReference(TypeDecorator[str]):
    """``pack`` / ``unpack`` as a column type: VARCHAR on SQLite (the value stored as a
    BLOB: no table rebuilt), ``bytea`` on PostgreSQL. A ``bytes`` value is taken as a
    stored form already (the search's range bounds)."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(160))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: str | bytes | None, dialect: Dialect) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        return pack(value)

    def process_result_value(self, value: bytes | str | None, dialect: Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value  # SQLite: a row stored as text (changed in the database)
        return unpack(bytes(value))


KINDS = {"patient": "p", "entity": "e"}  # audit_link.kind as stored: one character
_KIND_OF = {stored: kind for kind, stored in KINDS.items()}


class LinkKind(TypeDecorator[str]):
    """``patient`` / ``entity`` stored as ``p`` / ``e`` (decision 0074); any other value
    as it is (and read back as it is)."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else KINDS.get(value, value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else _KIND_OF.get(value, value)


# -- a link's entity; PostgreSQL's index of audit_link until migration 0048 (decision 0092) --
HISTORY = b"/_history/"


def entity_of(stored: bytes) -> bytes:
    """The stored form of the entity a stored link names, its version left off: a packed
    reference's 18 bytes, a text one's bytes before its first ``/_history/``, else itself.
    ``ENTITY_SQL`` and ``audit_link_hashes`` (migration 0048) compute the same in PostgreSQL."""
    if stored[:1] == PACKED and len(stored) >= 18:
        return stored[:18]
    at = stored.find(HISTORY)
    return stored if at < 0 else stored[:at]


_AT = f"POSITION(('\\x{HISTORY.hex()}'::bytea) IN ({{col}}))"
# ``entity_of`` in SQL, over the column ``{col}``: the expression of PostgreSQL's hash index
# ``ix_audit_link_entity`` (migrations 0040 to 0048; bench/pg_audit_link_reads.py reads it).
# Written as PostgreSQL prints it back (``pg_get_indexdef``)
ENTITY_SQL = (
    "\nCASE\n"
    "    WHEN SUBSTRING({col} FROM 1 FOR 1) = '\\x01'::bytea AND length({col}) >= 18"
    " THEN SUBSTRING({col} FROM 1 FOR 18)\n"
    f"    WHEN {_AT} > 0 THEN SUBSTRING({{col}} FROM 1 FOR {_AT} - 1)\n"
    "    ELSE {col}\n"
    "END"
)


# -- PostgreSQL: a record's links as one value on audit_record (migration 0048, decision 0119) --
# Each link is an element: its kind as stored (``p`` / ``e``) and its reference as stored
# (``pack``). ``audit_record.links`` holds a record's elements (the set ``links_of(body)``,
# sorted) one after the other, each after its length: one byte, or 255 and two bytes (big
# endian) for an element of 255 bytes or more (``pack_links``; 22 bytes for a versioned
# Observation where a ``bytea[]`` took 28). PostgreSQL reads them with the function
# ``audit_link_elements`` (``bytea[]``); the GIN index is over ``audit_link_hashes(links)``:
# for each element, the first 8 bytes of sha256 of its kind and entity (``entity_of``: the
# version left off) as a signed bigint. A search probes the hashes of the entities it names,
# then keeps the records whose elements hold the reference or one of its versions: a hash
# shared by chance only adds a candidate that condition drops.
LINK_HASHES_SQL = "audit_link_hashes"  # the SQL functions (migration 0048 creates them)
LINK_ELEMENTS_SQL = "audit_link_elements"


def pack_links(elements: list[bytes]) -> bytes:
    """The stored form of a record's link elements."""
    out = bytearray()
    for element in elements:
        size = len(element)
        out += bytes((size,)) if size < 255 else b"\xff" + size.to_bytes(2, "big")
        out += element
    return bytes(out)


def unpack_links(stored: bytes) -> list[bytes]:
    """The elements ``stored`` holds (as ``audit_link_elements`` reads them: a value cut
    short in the database gives its last element short, never an error)."""
    found, at = [], 0
    while at < len(stored):
        size, at = stored[at], at + 1
        if size == 255:
            if at + 2 > len(stored):
                break
            size, at = int.from_bytes(stored[at : at + 2], "big"), at + 2
        found.append(stored[at : at + size])
        at += size
    return found


def link_element(kind: str, reference: str) -> bytes:
    """The stored element of the link ``(kind, reference)``."""
    return KINDS.get(kind, kind).encode() + pack(reference)


def link_of(element: bytes) -> tuple[str, str]:
    """The ``(kind, reference)`` an element is the stored form of (``link_element``)."""
    stored = chr(element[0]) if element else ""
    return _KIND_OF.get(stored, stored), unpack(element[1:])


def entity_hash(kind: str, reference: str) -> int:
    """The index key of every link of ``kind`` to ``reference``'s entity (any version)."""
    return element_hash(link_element(kind, reference))


def element_hash(element: bytes) -> int:
    """What ``audit_link_hashes`` computes for one stored element: the first 8 bytes of
    sha256 of its kind byte and its reference's entity, as a signed 64-bit integer."""
    key = element[:1] + entity_of(element[1:])
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big", signed=True)
