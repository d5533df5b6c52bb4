"""The recognition mark (互认标识: HR, 鄂HR, ★ ...) on the stored results themselves, so that a
receiving HIS shows it beside the result without asking ``$recognisable``.

The pipeline's step ``mark_recognisable_results`` (adapter/pipeline/steps.py, before
``save``) hands it every message: each Observation / DiagnosticReport a message stores is
judged as it is issued — a result of a catalogue item, final, with the specimen and method
the item needs, from a facility qualified for the item's scope and with an assessment
(室间质评) passed and in force on the result's day — and, when it passes, carries
``meta.tag`` {system ``…/CodeSystem/recognition-mark``, code: the item's mark}. The mark says
"recognisable when issued"; whether it still counts at an order (the validity window, a
later correction) is what ``$recognisable`` answers at that moment.

Every new version is judged again: a correction from the same qualified lab keeps the mark,
a version that cancels the result (``cancelled``, ``entered-in-error``) or is not final loses
it. A lab's assessment expiring later changes nothing (it was in force on the result's day);
a new catalogue edition applies to versions stored from then on. A mark sent in the message
under the adapter's system is never kept: only the catalogue decides
(docs/decisions/0039-recognition-marks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.recognition.catalogue import Catalogue, Item, Scope
from adapter.recognition.parameters import MARK_SYSTEM
from adapter.recognition.query import (
    RESULT_TYPES,
    StoredResult,
    item_of,
    judge,
    result_codes,
    result_time,
    specimen_codes,
    specimen_references,
    specimen_types,
    zone_of,
)

SCOPE_WORDS = {Scope.consortium: "医共体内", Scope.city: "市域", Scope.province: "省域"}


def mark_tag(item: Item) -> dict[str, str]:
    """The ``meta.tag`` of a result recognisable when issued."""
    return {
        "system": MARK_SYSTEM,
        "code": item.mark,
        "display": f"检查检验结果互认 ({SCOPE_WORDS[item.scope]})",
    }


@dataclass(slots=True)
class ResultMarks:
    """The catalogue's items by result code, built once for a pipeline."""

    catalogue: Catalogue
    consortium: Consortium
    codes: dict[tuple[str, str], Item] = field(init=False)

    def __post_init__(self) -> None:
        self.codes = result_codes(self.catalogue, self.consortium)

    def mark(
        self,
        session: Session,
        resources: list[dict[str, Any]],
        facility_id: str,
    ) -> None:
        """Set or clear the mark of each result in ``resources`` (in place), sent by
        ``facility_id``; Specimens are read from the same message, else from the store."""
        zone = zone_of(self.consortium)
        found = [
            (body, item)
            for body in resources
            if body.get("resourceType") in RESULT_TYPES
            for item in [item_of(body, self.codes)]
        ]
        if not found:
            return
        specimens = self._specimens(session, resources, [(b, i) for b, i in found if i])
        for body, item in found:
            _drop_mark(body)
            if item is None:
                continue
            taken = result_time(body, zone)
            if taken is None:
                continue
            codes = frozenset().union(*(specimens.get(r, ()) for r in specimen_references(body)))
            result = StoredResult(
                body["resourceType"], body.get("id", ""), facility_id, body, codes
            )
            # judged at its own time: the window is not the question, the qualification is
            verdict = judge(self.catalogue, item, result, taken, "outpatient", zone)
            if verdict.recognisable:
                body.setdefault("meta", {}).setdefault("tag", []).append(mark_tag(item))

    @staticmethod
    def _specimens(
        session: Session,
        resources: list[dict[str, Any]],
        found: list[tuple[dict[str, Any], Item]],
    ) -> dict[str, frozenset[str]]:
        wanted = {ref for body, item in found if item.specimen for ref in specimen_references(body)}
        if not wanted:
            return {}
        here = {
            f"Specimen/{r.get('id')}": specimen_codes(r)
            for r in resources
            if r.get("resourceType") == "Specimen"
        }
        types = {ref: here[ref] for ref in wanted if ref in here}
        stored = [ref.removeprefix("Specimen/") for ref in wanted if ref not in here]
        if stored:
            types.update(specimen_types(session, stored))
        return types


def _drop_mark(body: dict[str, Any]) -> None:
    """Remove any mark under the adapter's system (a message's own, or a stored version's
    carried over by the merge): the step decides afresh."""
    meta = body.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("tag"), list):
        return
    kept = [t for t in meta["tag"] if not (isinstance(t, dict) and t.get("system") == MARK_SYSTEM)]
    if len(kept) == len(meta["tag"]):
        return
    if kept:
        meta["tag"] = kept
    else:
        del meta["tag"]
        if not meta:
            del body["meta"]
