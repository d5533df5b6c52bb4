"""Which stored results of a person can be recognised now, item by item, and why the others
cannot (the `$recognisable` operation and ``adapter recognition query``).

A result (Observation or DiagnosticReport) counts when, in this order:

1. its status is final (``final``, ``amended``, ``corrected``, ``appended``); a cancelled or
   entered-in-error one is ``cancelled``, a preliminary one ``not-final``; where the item
   names the specimen types or methods it needs, the result has one of them;
2. it is inside the item's validity window: the result's calendar day in the consortium's
   zone is day 0, and it counts through day N (until 00:00 of day N + 1);
3. its issuing facility (the facility whose source sent it) has qualifications in the
   catalogue, and takes part in the item's scope (consortium, city, province);
4. an assessment (室间质评) covering the item was passed and in force on the result's day,
   and no failed one was in force that day.

The physician's conclusion (``DiagnosticReport.conclusion`` / ``conclusionCode``) is never
part of what is recognised; each answer says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    ColumnElement,
    String,
    any_,
    bindparam,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.fhir.dates import parse_range
from adapter.identity import person_of, records_of
from adapter.recognition.catalogue import Assessment, Catalogue, Item
from adapter.store import index_keys as keys
from adapter.store.facilities import name_of
from adapter.store.index_params import rows_of
from adapter.store.models import Resource, SearchIndex
from adapter.store.search_tokens import token_rows
from adapter.store.systems import known_ids

RESULT_TYPES = ("Observation", "DiagnosticReport")
FINAL = frozenset({"final", "amended", "corrected", "appended"})
CANCELLED = frozenset({"cancelled", "entered-in-error"})
LOINC = "http://loinc.org"
# never recognised: the physician's diagnostic conclusion (domain rule, 国卫医发〔2022〕6号)
EXCLUDED = ("conclusion", "conclusionCode")

# why a result, or an asked item, is not recognisable (the reason code table of the answers)
WHY = {
    "not-in-catalogue": "该项目不在互认目录中",
    "local-code-unmapped": "本机构项目代码未对照到互认目录",
    "no-prior-result": "无既往结果",
    "cancelled": "结果已作废或撤销",
    "not-final": "结果尚未审核发布",
    "specimen-differs": "标本类型与互认要求不符",
    "method-differs": "检测方法与互认要求不符",
    "no-date": "结果无检查检验时间",
    "expired": "结果已超过互认时限",
    "facility-unknown": "出具机构不在医共体内",
    "facility-not-qualified": "出具机构无互认资质",
    "out-of-scope": "出具机构不在该项目的互认范围内",
    "eqa-failed": "出具机构室间质评不合格",
    "eqa-expired": "出具机构室间质评已过期",
    "eqa-missing": "出具机构无该项目的室间质评",
}

_r = Resource.__table__
_Id = TypeVar("_Id", int, str)  # resource keys, or ids
_si = SearchIndex.__table__
_CHUNK = 2000  # resource ids per IN list (SQLite allows 32766 parameters)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One stored result of an item, recognisable or with the reason it is not."""

    reference: str  # "Observation/<id>"
    facility_id: str | None
    taken: dt.datetime | None  # when the sample was taken / the exam done (else issued)
    expires: dt.datetime | None  # recognisable until this instant (exclusive)
    status: str | None
    reason: str | None  # None: recognisable
    detail: str | None = None

    @property
    def recognisable(self) -> bool:
        return self.reason is None


@dataclass(slots=True)
class ItemAnswer:
    asked: str  # the code as asked (common or local)
    item: Item | None
    reason: str | None = None  # why nothing is recognisable for this item
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def recognisable(self) -> list[Candidate]:
        return [c for c in self.candidates if c.recognisable]


@dataclass(frozen=True, slots=True)
class Question:
    patient_id: str
    at: dt.datetime  # timezone-aware: "now" of the question
    codes: Sequence[str] = ()  # common item codes
    local_codes: Sequence[str] = ()  # the asking facility's own codes
    facility_id: str | None = None  # the asking (ordering) facility
    setting: str = "outpatient"
    # more Patient records of the person (found by an identifier), beside patient_id's
    other_records: Sequence[str] = ()


def zone_of(consortium: Consortium, default: str = "Asia/Shanghai") -> ZoneInfo:
    return ZoneInfo(consortium.timezone or default)


def ask(
    session: Session, catalogue: Catalogue, consortium: Consortium, question: Question
) -> list[ItemAnswer]:
    """Answer per item asked; with no item asked (the encounter-start reminder), every item
    of the catalogue the person has a result of."""
    answers: list[ItemAnswer] = []
    for code in question.codes:
        item = catalogue.item(code)
        answers.append(ItemAnswer(code, item, None if item else "not-in-catalogue"))
    for code in question.local_codes:
        item = (
            catalogue.item_for_local(question.facility_id, code) if question.facility_id else None
        )
        answers.append(ItemAnswer(code, item, None if item else "local-code-unmapped"))
    encounter_start = not question.codes and not question.local_codes
    items = (
        list(catalogue.items)
        if encounter_start
        else list({a.item.code: a.item for a in answers if a.item}.values())
    )
    zone = zone_of(consortium)
    patient_keys = sorted(
        {
            f"Patient/{record}"
            for patient in (question.patient_id, *question.other_records)
            for record in records_of(session, person_of(session, patient))
        }
    )
    found = _with_specimens(session, _results(session, catalogue, consortium, items, patient_keys))
    by_item: dict[str, list[Candidate]] = {}
    for item, row in found:
        judged = judge(catalogue, item, row, question.at, question.setting, zone)
        if judged.taken is not None and judged.taken > question.at:
            continue  # not a prior result when asking about an earlier moment
        by_item.setdefault(item.code, []).append(judged)
    for candidates in by_item.values():
        candidates.sort(key=lambda c: c.taken or dt.datetime.min.replace(tzinfo=dt.UTC))
        candidates.reverse()  # newest first
    if encounter_start:
        answers = [ItemAnswer(i.code, i) for i in items if i.code in by_item]
    for answer in answers:
        if answer.item is None:
            continue
        answer.candidates = by_item.get(answer.item.code, [])
        if not answer.candidates:
            answer.reason = "no-prior-result"
        elif not answer.recognisable:
            answer.reason = answer.candidates[0].reason  # the newest result's reason
    return answers


@dataclass(frozen=True, slots=True)
class StoredResult:
    resource_type: str
    id: str
    facility_id: str | None
    body: dict[str, Any]
    specimen_codes: frozenset[str] = frozenset()  # codes of its Specimen's type, when read


def _local_pairs(catalogue: Catalogue, consortium: Consortium, item: Item) -> list[tuple[str, str]]:
    kind = catalogue.local_code_systems.get(item.kind)
    pairs: list[tuple[str, str]] = []
    for facility_id, local_codes in item.local.items():
        facility = consortium.facility(facility_id)
        if facility is None or kind is None:
            continue
        system = facility.identifier_system(kind)
        pairs.extend((system, code) for code in local_codes)
    return pairs


def _wanted(
    catalogue: Catalogue, consortium: Consortium, items: Iterable[Item]
) -> dict[tuple[str, str], Item]:
    wanted: dict[tuple[str, str], Item] = {}
    for item in items:
        for loinc in item.loinc:
            wanted.setdefault((LOINC, loinc), item)
        for pair in _local_pairs(catalogue, consortium, item):
            wanted.setdefault(pair, item)
    return wanted


def _results(
    session: Session,
    catalogue: Catalogue,
    consortium: Consortium,
    items: Iterable[Item],
    patient_keys: list[str],
) -> list[tuple[Item, StoredResult]]:
    """The person's stored results whose code is one of the items' (LOINC or a facility's
    local code), found through the search index, each with the item it is a result of."""
    wanted = _wanted(catalogue, consortium, items)
    if not wanted or not patient_keys:
        return []
    # the index names a code's system by its search_system id (decision 0059): a system the
    # store has never seen has no result
    ids = known_ids(session, {system for system, _ in wanted if system})
    by_id = {(ids[s], c): item for (s, c), item in wanted.items() if s in ids}
    if not by_id:
        return []
    out: list[tuple[Item, StoredResult]] = []
    for rtype in RESULT_TYPES:
        # in two steps, so that both databases work per person whatever their planners
        # estimate: the person's rows (patient_key index), then which of them carry an
        # item's code (SQLite: the token index, which ends with resource_key; PostgreSQL: the
        # person's code rows, matched here, _coded_rows). As one join, SQLite scanned every
        # row of the codes and PostgreSQL hashed them all: work growing with the consortium
        # instead of the person (docs/decisions/0027-recognition.md, 0039).
        mine = select(_r.c.resource_key).where(
            _r.c.resource_type == rtype,
            _r.c.patient_key.in_(patient_keys),
            _r.c.deleted.is_(False),
        )
        person_keys = list(session.execute(mine).scalars())
        found: list[int] = []
        if _postgres(session) and person_keys:
            found = _coded_rows(session, rtype, person_keys, by_id)
        else:
            codes = _code_condition(by_id)
            for chunk in _chunks(session, person_keys):
                rkeys = (
                    select(_si.c.resource_key)
                    .distinct()
                    .where(
                        rows_of(_si, rtype, ("code",), "token"),
                        _one_of(session, _si.c.resource_key, chunk),
                        codes,
                    )
                )
                found.extend(session.execute(rkeys).scalars())
        for chunk in _chunks(session, found):
            query = select(_r.c.id, name_of(_r.c.facility_key), _r.c.body).where(
                _r.c.resource_type == rtype, _one_of(session, _r.c.resource_key, chunk)
            )
            for row in session.execute(query):
                item = _item_of(row.body, wanted)
                if item is not None:
                    out.append((item, StoredResult(rtype, row.id, row.facility_id, row.body)))
    return out


def _coded_rows(
    session: Session, rtype: str, person_keys: list[int], wanted: dict[tuple[int, str], Item]
) -> list[int]:
    """PostgreSQL: the person's code rows through the resource_key index,
    matched here. With the codes in the statement, PostgreSQL planned from 1 million rows on
    a scan of the token index over every row of each asked code (the whole consortium's
    blood counts) with the ids as a filter: 40,000 buffers for one person at 1 million
    Observations, growing with the store (bench/README.md, bench_recognition.py)."""
    si = token_rows()  # the rows and the token arrays (decision 0103)
    rows = select(si.c.resource_key, si.c.system_id, si.c.code, si.c.code_full)
    rows = rows.where(
        rows_of(si, rtype, ("code",), "token"),
        _one_of(session, si.c.resource_key, person_keys),
    )
    found: dict[int, None] = {}
    for row in session.execute(rows):
        pair = (row.system_id, row.code_full or row.code)
        if pair in wanted:
            found[row.resource_key] = None
    return list(found)


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _chunks(session: Session, ids: list[_Id]) -> Iterator[list[_Id]]:
    """PostgreSQL takes the keys as one array; SQLite as IN lists of a bounded length."""
    size = len(ids) if _postgres(session) else _CHUNK
    for start in range(0, len(ids), size or 1):
        yield ids[start : start + size]


def _one_of(session: Session, column: Column[Any], ids: list[_Id]) -> ColumnElement[bool]:
    # one array parameter: the same statement text for any number of keys (no per-call
    # conversion of thousands of placeholders, and the server can reuse its plan)
    if _postgres(session):
        item = BigInteger() if ids and isinstance(ids[0], int) else String()
        return column == any_(bindparam(None, ids, type_=ARRAY(item)))
    return column.in_(ids)


def _code_condition(pairs: Iterable[tuple[int, str]]) -> ColumnElement[bool]:
    """(system id, code) is one of ``pairs``: one tuple IN for the usual short codes, the
    bounded-key comparison (adapter/store/index_keys.py) for any longer one."""
    every = list(pairs)
    short = [(s, c) for s, c in every if len(c) < keys.KEY_CHARS]
    longer = [
        (_si.c.system_id == s) & keys.equals(_si.c.code, _si.c.code_full, c)
        for s, c in every
        if len(c) >= keys.KEY_CHARS
    ]
    conditions: list[ColumnElement[bool]] = longer
    if short:
        conditions.insert(0, tuple_(_si.c.system_id, _si.c.code).in_(short))
    return or_(*conditions)


def is_result_of(
    catalogue: Catalogue, consortium: Consortium, item: Item, body: dict[str, Any]
) -> bool:
    """Whether a stored result's code is one of the item's (LOINC or a local code)."""
    wanted = {(LOINC, code): item for code in item.loinc}
    wanted.update((pair, item) for pair in _local_pairs(catalogue, consortium, item))
    return _item_of(body, wanted) is not None


def _item_of(body: dict[str, Any], wanted: dict[tuple[str, str], Item]) -> Item | None:
    for coding in (body.get("code") or {}).get("coding") or []:
        item = wanted.get((coding.get("system"), coding.get("code")))
        if item is not None:
            return item
    return None


def result_time(body: dict[str, Any], zone: ZoneInfo) -> dt.datetime | None:
    """When the result was obtained: effective[x] (collection, exam), else ``issued``; a
    time without a zone is read in the consortium's."""
    period = body.get("effectivePeriod") or {}
    for value in (body.get("effectiveDateTime"), period.get("start"), body.get("issued")):
        if isinstance(value, str) and value:
            try:
                return parse_range(value, zone)[0]
            except ValueError:
                continue
    return None


def expiry(taken: dt.datetime, days: int, zone: ZoneInfo) -> dt.datetime:
    """00:00 in ``zone`` of the day after the last valid day (the result's day is day 0)."""
    last = taken.astimezone(zone).date() + dt.timedelta(days=days + 1)
    return dt.datetime.combine(last, dt.time(0), tzinfo=zone)


def judge(
    catalogue: Catalogue,
    item: Item,
    result: StoredResult,
    at: dt.datetime,
    setting: str,
    zone: ZoneInfo,
) -> Candidate:
    """Whether one stored result of ``item`` is recognisable at ``at``; else the first
    reason it is not, in the order of the module docstring."""
    body = result.body
    reference = f"{result.resource_type}/{result.id}"
    status = body.get("status")
    taken = result_time(body, zone)
    expires = expiry(taken, item.days_for(setting), zone) if taken else None

    def no(reason: str, detail: str | None = None) -> Candidate:
        return Candidate(reference, result.facility_id, taken, expires, status, reason, detail)

    if status in CANCELLED:
        return no("cancelled", f"status {status}")
    if status not in FINAL:
        return no("not-final", f"status {status}")
    if item.specimen and not (result.specimen_codes & set(item.specimen)):
        shown = ", ".join(sorted(result.specimen_codes)) or "not recorded"
        return no(
            "specimen-differs", f"specimen {shown}; the item needs {', '.join(item.specimen)}"
        )
    if item.method and not (_codes(body.get("method")) & set(item.method)):
        shown = ", ".join(sorted(_codes(body.get("method")))) or "not recorded"
        return no("method-differs", f"method {shown}; the item needs {', '.join(item.method)}")
    if taken is None or expires is None:
        return no("no-date")
    if at >= expires:
        return no("expired", f"valid until {expires.isoformat()}")
    if result.facility_id is None:
        return no("facility-unknown")
    qualification = catalogue.qualification(result.facility_id)
    if qualification is None:
        return no("facility-not-qualified", result.facility_id)
    if item.scope not in qualification.scopes:
        return no("out-of-scope", f"{result.facility_id} is not in {item.scope.value} recognition")
    day = taken.astimezone(zone).date()
    covering = [a for a in qualification.eqa if _covers(a, item)]
    in_force = [a for a in covering if a.date <= day <= a.valid_until]
    failed = [a for a in in_force if a.result == "fail"]
    if failed:
        return no("eqa-failed", failed[0].programme)
    if not any(a.result == "pass" for a in in_force):
        lapsed = [a for a in covering if a.result == "pass" and a.valid_until < day]
        if lapsed:
            latest = max(lapsed, key=lambda a: a.valid_until)
            return no("eqa-expired", f"{latest.programme}, valid until {latest.valid_until}")
        return no("eqa-missing", item.group or item.code)
    return Candidate(reference, result.facility_id, taken, expires, status, None)


def _codes(concept: Any) -> frozenset[str]:
    """The codes of a CodeableConcept's codings."""
    if not isinstance(concept, dict):
        return frozenset()
    return frozenset(
        c["code"] for c in concept.get("coding") or [] if isinstance(c.get("code"), str)
    )


def _with_specimens(
    session: Session, found: list[tuple[Item, StoredResult]]
) -> list[tuple[Item, StoredResult]]:
    """Read the Specimen types of the results whose item names the specimens it needs."""
    wanted: set[str] = set()  # Specimen ids
    for item, result in found:
        if item.specimen:
            wanted.update(r.removeprefix("Specimen/") for r in specimen_references(result.body))
    if not wanted:
        return found
    types = specimen_types(session, wanted)
    out: list[tuple[Item, StoredResult]] = []
    for item, result in found:
        codes = frozenset().union(*(types.get(r, ()) for r in specimen_references(result.body)))
        out.append((item, replace(result, specimen_codes=codes) if codes else result))
    return out


def specimen_types(session: Session, ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """``Specimen/<id>`` -> the codes of its stored ``type``, for the ids stored."""
    types: dict[str, frozenset[str]] = {}
    for chunk in _chunks(session, sorted(set(ids))):
        query = select(_r.c.id, _r.c.body).where(
            _r.c.resource_type == "Specimen", _one_of(session, _r.c.id, chunk)
        )
        for row in session.execute(query):
            types[f"Specimen/{row.id}"] = specimen_codes(row.body)
    return types


def specimen_references(body: dict[str, Any]) -> list[str]:
    """``Specimen/<id>`` references of a result: ``Observation.specimen`` is one Reference,
    ``DiagnosticReport.specimen`` a list of them."""
    value = body.get("specimen")
    found = value if isinstance(value, list) else [value]
    return [
        ref
        for r in found
        if isinstance(r, dict)
        and isinstance(ref := r.get("reference"), str)
        and ref.startswith("Specimen/")
    ]


def specimen_codes(specimen: dict[str, Any]) -> frozenset[str]:
    """The codes of a Specimen's type (what an item's ``specimen`` names)."""
    return _codes(specimen.get("type"))


def result_codes(catalogue: Catalogue, consortium: Consortium) -> dict[tuple[str, str], Item]:
    """(system, code) -> the item whose result carries it: every item's LOINC codes and the
    facilities' local codes in their local code systems."""
    return _wanted(catalogue, consortium, catalogue.items)


def item_of(body: dict[str, Any], codes: dict[tuple[str, str], Item]) -> Item | None:
    """The item a stored result is a result of (its ``code``), or None."""
    return _item_of(body, codes)


def _covers(assessment: Assessment, item: Item) -> bool:
    return item.code in assessment.items or (
        item.group is not None and item.group in assessment.groups
    )
