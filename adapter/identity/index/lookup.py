"""Reading the index from outside: ``$match`` (IHE PDQm ITI-119), the identifier
cross-reference (IHE PIXm ITI-83) and "everything known under this identifier".

``match`` compares a Patient given by a caller with the indexed records sharing a blocking
key, under the same rules as the resolver, and answers per consortium person: the best
score and a grade (``certain`` for a rule match, ``possible`` for a review outcome).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.errors import AdapterError, InvalidRequestError, NotFoundError
from adapter.fhir.search_query import parse_search
from adapter.identity.features import Features, features_of
from adapter.identity.index import records as rows
from adapter.identity.index.locks import key_hash
from adapter.identity.index.person import PERSON_SYSTEM, person_resource
from adapter.identity.matcher import classify
from adapter.identity.rules import MatchingRules
from adapter.store import read_resource, search

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


class UnknownTargetDomainError(AdapterError):
    """ITI-83: a targetSystem the manager does not know is answered 403."""

    http_status = 403
    issue_code = "code-invalid"


@dataclass(slots=True)
class Candidate:
    person: str
    score: float
    grade: str  # certain | possible
    rule: str


def match(
    session: Session, patient: dict[str, Any], rules: MatchingRules, *, count: int = 10
) -> list[Candidate]:
    probe = features_of({**patient, "id": patient.get("id") or "$match"}, "$match", rules)
    hashes = sorted({key_hash(k) for k in probe.blocking_keys()})
    best: dict[str, Candidate] = {}
    # bounded like the resolver's: an oversized block answers its most recent records
    near = rows.near(
        session, probe.record, hashes, limit=rules.limits.candidates_per_key, own=False
    )
    for other, _ in near.candidates(hashes):
        decision = classify(probe, Features.from_json(other.features), rules)
        if decision.outcome == "none":
            continue
        grade = "certain" if decision.outcome == "match" else "possible"
        found = Candidate(other.person_id, decision.score, grade, decision.rule)
        known = best.get(other.person_id)
        if known is None or (found.grade, found.score) > (known.grade, known.score):
            best[other.person_id] = found
    ordered = sorted(best.values(), key=lambda c: (c.grade != "certain", -c.score, c.person))
    return ordered[:count]


def match_bundle(
    session: Session, candidates: list[Candidate], *, only_certain: bool, base: str
) -> dict[str, Any]:
    """The search-set Bundle of ITI-119: each person with search.score and match-grade;
    onlyCertainMatches with more than one (or no certain) candidate answers an empty set."""
    if only_certain:
        certain = [c for c in candidates if c.grade == "certain"]
        candidates = certain if len(certain) == 1 else []
    entries = []
    for c in candidates:
        body = person_resource(session, c.person)
        entries.append(
            {
                "fullUrl": f"{base}/Patient/{c.person}",
                "resource": body,
                "search": {
                    "mode": "match",
                    "score": c.score if c.grade != "certain" else max(c.score, 0.95),
                    "extension": [{"url": MATCH_GRADE, "valueCode": c.grade}],
                },
            }
        )
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


def known_domains(consortium: Consortium, rules: MatchingRules) -> tuple[set[str], list[str]]:
    """Identifier systems the index knows: exact systems, and facility namespace prefixes."""
    exact = {rules.identifiers.national_id, PERSON_SYSTEM, *rules.card_systems}
    prefixes = []
    for facility in consortium.facilities:
        exact.update(facility.identifier_systems.values())
        prefixes.append(facility.namespace.rstrip("/") + "/")
    return exact, prefixes


def _known(system: str, domains: tuple[set[str], list[str]]) -> bool:
    exact, prefixes = domains
    return system in exact or any(system.startswith(p) for p in prefixes)


def records_by_identifier(session: Session, system: str, value: str) -> list[str]:
    """Patient ids (records and persons) carrying this identifier."""
    request = parse_search("Patient", [("identifier", f"{system}|{value}")])
    _, found = search(session, "Patient", request.criteria, count=100, offset=0)
    return [b["id"] for b in found]


def linked_everything(session: Session, system: str, value: str) -> tuple[list[str], list[str]]:
    """(person ids, record ids) reachable from an identifier: every person of a record that
    carries it, and every record of those persons."""
    persons: list[str] = []
    found = records_by_identifier(session, system, value)
    if system == PERSON_SYSTEM and not found and rows.records_of_person(session, value):
        found = [value]  # persons not published as resources: the index knows them
    for pid in found:
        row = rows.record(session, pid)
        person = row.person_id if row is not None else pid
        if person not in persons:
            persons.append(person)
    records = [r.patient_id for p in persons for r in rows.records_of_person(session, p)]
    persons = [p for p in persons if p not in records]
    return persons, records


def pix(
    session: Session,
    consortium: Consortium,
    rules: MatchingRules,
    source_identifier: str,
    target_systems: list[str],
) -> dict[str, Any]:
    """ITI-83: the identifiers (and Patient references) of the same person in other domains."""
    system, sep, value = source_identifier.partition("|")
    if not sep or not system or not value:
        raise InvalidRequestError(
            "sourceIdentifier must be system|value", location="sourceIdentifier"
        )
    domains = known_domains(consortium, rules)
    if not _known(system, domains):
        raise InvalidRequestError(
            "sourceIdentifier: the assigning authority (system) is not known",
            location="sourceIdentifier",
            code="code-invalid",
        )
    for target in target_systems:
        if not _known(target, domains):
            raise UnknownTargetDomainError(
                "targetSystem: the domain is not known", location="targetSystem"
            )
    persons, records = linked_everything(session, system, value)
    if not persons and not records:
        raise NotFoundError(
            "sourceIdentifier: no patient with this identifier", location="sourceIdentifier"
        )
    params: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = {(system, value)}
    for pid in [*persons, *records]:
        body = (
            person_resource(session, pid)
            if pid in persons
            else read_resource(session, "Patient", pid)
        )
        if body is None:
            continue
        wanted = not target_systems
        for ident in body.get("identifier") or []:
            pair = (ident.get("system") or "", ident.get("value") or "")
            if pair in seen or not pair[1] or (target_systems and pair[0] not in target_systems):
                continue
            seen.add(pair)
            wanted = True
            params.append(
                {
                    "name": "targetIdentifier",
                    "valueIdentifier": {
                        k: v for k, v in ident.items() if k in ("system", "value", "use", "type")
                    },
                }
            )
        if wanted:
            params.append({"name": "targetId", "valueReference": {"reference": f"Patient/{pid}"}})
    return {"resourceType": "Parameters", "parameter": params}
