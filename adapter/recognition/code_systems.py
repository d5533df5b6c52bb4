"""The recognition code systems as FHIR CodeSystems, served at ``/fhir/CodeSystem/{id}``, so
that every system URL in a ``$recognisable`` answer, a decision or a result's mark tag
resolves: why a result is not recognisable (the adapter's own table), and, from the
catalogue in force, its common items, its marks and its reasons for not recognising."""

from __future__ import annotations

from typing import Any

from adapter.recognition.catalogue import Catalogue
from adapter.recognition.parameters import ITEM_SYSTEM, MARK_SYSTEM, REASON_SYSTEM, WHY_SYSTEM
from adapter.recognition.query import WHY

_COMMON = {
    "resourceType": "CodeSystem",
    "status": "active",
    "experimental": False,
    "publisher": "yigongti-fhir-adapter",
    "caseSensitive": True,
    "content": "complete",
}


def _code_system(
    url: str, name: str, title: str, description: str, version: str, concept: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        **_COMMON,
        "id": url.rsplit("/", 1)[1],
        "url": url,
        "version": version,
        "name": name,
        "title": title,
        "description": description,
        "count": len(concept),
        "concept": concept,
    }


def code_systems(catalogue: Catalogue | None = None) -> list[dict[str, Any]]:
    """The unavailability table always; the catalogue's three when one is configured (their
    version is the catalogue's edition: a new edition is a new CodeSystem version)."""
    found = [
        _code_system(
            WHY_SYSTEM,
            "RecognitionUnavailable",
            "不可互认原因 (Why a result is not recognisable)",
            "Why a prior result, or an item asked, is not recognisable: the reason parts of "
            "a $recognisable answer (docs/recognition.md).",
            "1",
            [{"code": code, "display": text, "definition": text} for code, text in WHY.items()],
        )
    ]
    if catalogue is None:
        return found
    marks = sorted({item.mark for item in catalogue.items})
    return [
        *found,
        _code_system(
            ITEM_SYSTEM,
            "RecognitionItem",
            "互认项目 (Mutually recognised items)",
            f"The common item codes of the recognition catalogue {catalogue.edition} "
            f"(effective {catalogue.effective.isoformat()}).",
            catalogue.edition,
            [
                {"code": item.code, "display": item.name, "definition": item.name}
                for item in catalogue.items
            ],
        ),
        _code_system(
            MARK_SYSTEM,
            "RecognitionMark",
            "互认标识 (Recognition marks)",
            "The marks a recognisable result carries in meta.tag and in $recognisable "
            "answers (docs/recognition.md).",
            catalogue.edition,
            [{"code": mark, "display": mark, "definition": f"互认标识 {mark}"} for mark in marks],
        ),
        _code_system(
            REASON_SYSTEM,
            "RecognitionRefusalReason",
            "不予互认理由 (Reasons for not recognising)",
            "A doctor's reason for not recognising a prior result (national and provincial), "
            f"from the recognition catalogue {catalogue.edition}.",
            catalogue.edition,
            [
                {"code": r.code, "display": r.display, "definition": r.patient_text or r.display}
                for r in catalogue.reasons
            ],
        ),
    ]
