"""Comparing our Observations with a peer converter's, field by field, with a readable diff.

Both sides are reduced to the same small set of *facts* per Observation (the fields the
comparison is about); Observations are matched by their OBX-3 code and, for a code that
occurs several times, by order. A difference is one line::

    OBX 718-7 #1 unit: ours 'grams per milliliter', peer 'g/mL'

Local codes are compared by code only: each converter names its own system for a
laboratory's local codes (ours: the facility's namespace), so only the systems of standard
code systems (LOINC, SNOMED CT, UCUM, HL7 tables) are compared.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

UCUM = "http://unitsofmeasure.org"
STANDARD_SYSTEMS = frozenset(
    {
        "http://loinc.org",
        "http://snomed.info/sct",
        UCUM,
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
    }
)
FIELDS = ("code", "status", "value", "unit", "ucum", "interpretation", "low", "high")


def load_bundle_observations(path: Path) -> list[dict[str, Any]]:
    """The Observations of a peer's Bundle, in entry order."""
    bundle = json.loads(path.read_text(encoding="utf-8-sig"))
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e.get("resource", {}).get("resourceType") == "Observation"
    ]


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)).normalize()
    except ArithmeticError:
        return None


def _codings(concept: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [c for c in (concept or {}).get("coding") or [] if c.get("code")]


def coded(concept: dict[str, Any] | None) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """(every code, the (system, code) pairs of standard code systems)."""
    codings = _codings(concept)
    return (
        frozenset(c["code"] for c in codings),
        frozenset((c["system"], c["code"]) for c in codings if c.get("system") in STANDARD_SYSTEMS),
    )


def key_code(observation: dict[str, Any]) -> str:
    """The code Observations are matched by: the first coding's code (OBX-3.1, else .4)."""
    codings = _codings(observation.get("code"))
    return codings[0]["code"] if codings else ""


def facts(observation: dict[str, Any]) -> dict[str, Any]:
    """The compared fields of one Observation, normalised (numbers as Decimal)."""
    out: dict[str, Any] = {
        "code": coded(observation.get("code")),
        "status": observation.get("status"),
    }
    quantity = observation.get("valueQuantity")
    if quantity is not None:
        out["value"] = ("Quantity", quantity.get("comparator"), _number(quantity.get("value")))
        out["unit"] = quantity.get("unit")
        out["ucum"] = quantity.get("code") if quantity.get("system") == UCUM else None
    elif "valueString" in observation:
        out["value"] = ("string", observation["valueString"].strip())
    elif "valueCodeableConcept" in observation:
        out["value"] = ("CodeableConcept", coded(observation["valueCodeableConcept"]))
    else:
        kinds = [k for k in observation if k.startswith("value")]
        out["value"] = (kinds[0], observation[kinds[0]]) if kinds else None
    out.setdefault("unit", None)
    out.setdefault("ucum", None)
    out["interpretation"] = frozenset(
        code for concept in observation.get("interpretation") or [] for code in coded(concept)[0]
    )
    ranges = observation.get("referenceRange") or [{}]
    out["low"] = _number((ranges[0].get("low") or {}).get("value"))
    out["high"] = _number((ranges[0].get("high") or {}).get("value"))
    return out


def show(value: Any, limit: int = 120) -> str:
    """Facts as short readable text for diff lines."""
    text = _show(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any) -> str:
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(_show(v) for v in value)) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    if isinstance(value, Decimal):
        return format(value, "f")
    return repr(value)


def show_pair(ours: Any, peer: Any) -> tuple[str, str]:
    """Both sides as text; two long strings are shown from a little before where they part."""
    if isinstance(ours, tuple) and isinstance(peer, tuple) and ours[:1] == peer[:1] == ("string",):
        a, b = ours[1], peer[1]
        start = next(
            (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
        )
        if start > 30:
            return (show("..." + a[start - 20 :]), show("..." + b[start - 20 :]))
    return show(ours), show(peer)


def _same(field_name: str, ours: Any, peer: Any) -> bool:
    if field_name == "code" or (
        field_name == "value"
        and isinstance(ours, tuple)
        and ours
        and ours[0] == "CodeableConcept"
        and isinstance(peer, tuple)
        and peer
        and peer[0] == "CodeableConcept"
    ):
        ours_c = ours if field_name == "code" else ours[1]
        peer_c = peer if field_name == "code" else peer[1]
        # every code equal; standard systems equal where either side names one
        return ours_c[0] == peer_c[0] and ours_c[1] == peer_c[1]
    return ours == peer


@dataclass(frozen=True, slots=True)
class Difference:
    code: str  # the OBX-3 code the Observations were matched by
    occurrence: int  # 1 for the first Observation with that code, 2 for the next ...
    field: str  # one of FIELDS, or "presence"
    ours: str
    peer: str
    peer_absent: bool  # the peer gives nothing for this field (we give more)

    def __str__(self) -> str:
        return (
            f"OBX {self.code or '(no code)'} #{self.occurrence} {self.field}: "
            f"ours {self.ours}, peer {self.peer}"
        )


@dataclass(slots=True)
class Comparison:
    compared: int = 0  # Observation pairs
    agreements: int = 0  # (pair, field) agreeing
    differences: list[Difference] = field(default_factory=list)


def compare_observations(ours: list[dict[str, Any]], peer: list[dict[str, Any]]) -> Comparison:
    """Match by OBX-3 code and order; compare every field of FIELDS."""
    result = Comparison()
    mine: dict[str, list[dict[str, Any]]] = defaultdict(list)
    theirs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    order: list[str] = []
    for obs in ours:
        code = key_code(obs)
        if code not in mine and code not in theirs:
            order.append(code)
        mine[code].append(obs)
    for obs in peer:
        code = key_code(obs)
        if code not in mine and code not in theirs:
            order.append(code)
        theirs[code].append(obs)
    for code in order:
        a, b = mine.get(code, []), theirs.get(code, [])
        for n in range(max(len(a), len(b))):
            if n >= len(a) or n >= len(b):
                result.differences.append(
                    Difference(
                        code,
                        n + 1,
                        "presence",
                        "present" if n < len(a) else "absent",
                        "present" if n < len(b) else "absent",
                        n >= len(b),
                    )
                )
                continue
            result.compared += 1
            fa, fb = facts(a[n]), facts(b[n])
            for name in FIELDS:
                if _same(name, fa[name], fb[name]):
                    result.agreements += 1
                else:
                    ours_text, peer_text = show_pair(fa[name], fb[name])
                    result.differences.append(
                        Difference(code, n + 1, name, ours_text, peer_text, fb[name] is None)
                    )
    return result
