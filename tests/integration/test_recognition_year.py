"""检查检验结果互认 over a generated consortium year (tests/integration/recognition_year.py):
a catalogue of 200+ items, qualifications with EQA passes, failures and lapses, a year of
results of 300 persons and named cases. On SQLite, and on PostgreSQL with ``-m db`` and
ADAPTER_TEST_DATABASE_URL (tests/conftest.py).

Every reason ``$recognisable`` can give (``WHY`` in adapter/recognition/query.py) must be
produced by some case: a reason added to the code without a case here fails
``test_every_reason_the_query_can_give_is_produced``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.errors import InvalidRequestError
from adapter.recognition.corrections import changed_after_recognition
from adapter.recognition.decisions import DecisionInput, record
from adapter.recognition.marks import ResultMarks
from adapter.recognition.parameters import MARK_SYSTEM
from adapter.recognition.query import WHY, ItemAnswer, Question, ask
from adapter.recognition.rate import monthly_rates
from adapter.store import make_engine, save_resources, session_factory
from adapter.store.models import Resource
from tests.integration.recognition_year import (
    COUNTY,
    LIUHE,
    LIUHE_UNMAPPED,
    SHIQIAO,
    ZONE,
    Case,
    Year,
    at,
    generate,
    named_cases,
    result,
)

CASES = {c.name: c for c in named_cases()}
YEAR_END = at("2026-12-31T23:59:59+08:00")


@dataclass
class World:
    year: Year
    factory: sessionmaker[Session]

    def ask(self, question: Question) -> list[ItemAnswer]:
        with self.factory() as session:
            return ask(session, self.year.catalogue, self.year.consortium, question)

    def case(self, case: Case, at_: dt.datetime | None = None) -> ItemAnswer:
        question = Question(
            case.patient,
            at_ or case.at,
            codes=() if case.local else (case.item,),
            local_codes=(case.item,) if case.local else (),
            facility_id=case.facility,
            setting=case.setting,
        )
        answers = self.ask(question)
        assert len(answers) == 1, answers
        return answers[0]


@pytest.fixture(scope="module")
def world(module_database_url: str) -> Iterator[World]:
    engine = make_engine(module_database_url)
    factory = session_factory(engine)
    year = generate(factory)
    yield World(year, factory)
    engine.dispose()


def test_the_generated_catalogue_is_a_consortium_s(world: World) -> None:
    catalogue = world.year.catalogue
    assert len(catalogue.items) >= 200  # the 2025 national target per consortium
    kinds = {i.kind.value for i in catalogue.items}
    assert kinds == {"lab", "exam"}
    assert {i.scope.value for i in catalogue.items} == {"consortium", "city", "province"}
    loincs = [code for i in catalogue.items for code in i.loinc]
    assert len(loincs) == len(set(loincs)) > 80
    for facility in (COUNTY, SHIQIAO, LIUHE):
        assert sum(1 for i in catalogue.items if facility in i.local) > 40, facility
    results = {a.result for q in catalogue.qualifications for a in q.eqa}
    assert results == {"pass", "fail"}
    assert world.year.results > 1500 and len(world.year.persons) == 300


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_answers_as_built(world: World, name: str) -> None:
    case = CASES[name]
    answer = world.case(case)
    assert answer.reason == case.reason, (name, answer.reason, answer.candidates)
    if case.result is not None and case.reason not in ("not-in-catalogue", "local-code-unmapped"):
        newest = answer.candidates[0]
        assert newest.reference == case.result
        # the item's reason is its newest result's, and the mark goes with recognisable
        assert newest.reason == case.reason
        assert newest.recognisable == (case.reason is None)


def test_every_reason_the_query_can_give_is_produced(world: World) -> None:
    produced: dict[str, list[str]] = {}
    for case in CASES.values():
        answer = world.case(case)
        for reason in [answer.reason, *(c.reason for c in answer.candidates)]:
            if reason:
                produced.setdefault(reason, []).append(case.name)
    missing = sorted(set(WHY) - set(produced))
    assert not missing, f"no case of the generated year gives: {missing}"
    assert set(produced) <= set(WHY)


def test_the_window_ends_at_midnight_in_shanghai(world: World) -> None:
    """A result taken 2026-06-10 00:30 +08:00 (06-09 16:30 UTC, stored in UTC) counts
    through 06-17 (day 7) in Asia/Shanghai: recognisable at 23:59, expired at 00:00."""
    midnight = dt.datetime(2026, 6, 18, tzinfo=ZONE)
    for name in ("edge-utc-last-minute", "edge-2359-last-minute"):
        answer = world.case(CASES[name])
        (candidate,) = answer.candidates
        assert candidate.recognisable and candidate.expires == midnight
        assert candidate.taken is not None and candidate.taken.astimezone(ZONE).day == 10
        # one second before midnight yes, midnight no
        assert world.case(CASES[name], midnight - dt.timedelta(seconds=1)).reason is None
        assert world.case(CASES[name], midnight).reason == "expired"
    # inpatient: 3 days for the blood count
    inpatient = world.case(CASES["edge-inpatient-last"]).candidates[0]
    assert inpatient.expires == dt.datetime(2026, 6, 14, tzinfo=ZONE)


def test_an_eqa_lapsing_inside_the_window_keeps_the_result(world: World) -> None:
    """石桥's blood-count assessment is valid until 2026-07-09: a result of 07-09 23:59
    counts through its whole window (07-16), one of 07-10 00:05 never counts."""
    kept = world.case(CASES["eqa-lapses-in-window"])
    assert kept.reason is None
    lapsed = world.case(CASES["eqa-expired"])
    assert lapsed.reason == "eqa-expired"
    assert "2026-07-09" in (lapsed.candidates[0].detail or "")
    # the day counts in Shanghai: 09-01 00:10 +08:00 (08-31 in UTC) is under the new pass
    assert world.case(CASES["eqa-failed-then-passed"]).reason is None


def test_scope_edges(world: World) -> None:
    expected = {
        "province-from-county": None,
        "province-from-shiqiao": "out-of-scope",  # consortium and city only
        "city-from-shiqiao": "eqa-missing",  # in scope; no immunology assessment
        "city-from-county": None,
        "city-from-liuhe": "out-of-scope",  # consortium only
        "consortium-from-liuhe": None,
        "province-exam-from-county": None,
        "exam-from-shiqiao": None,
    }
    assert {n: world.case(CASES[n]).reason for n in expected} == expected


def test_unmapped_local_codes(world: World) -> None:
    """柳河's own code that no item maps: asking by it says so, and a result stored under it
    is the result of no item (the blood count it is has no prior result)."""
    assert world.case(CASES["local-code-unmapped"]).reason == "local-code-unmapped"
    assert world.case(CASES["unmapped-result"]).reason == "no-prior-result"
    assert world.case(CASES["local-code-mapped"]).reason is None
    # the encounter-start question finds nothing for that person either
    case = CASES["unmapped-result"]
    assert world.ask(Question(case.patient, case.at)) == []
    with world.factory() as session:
        stored = session.get(Resource, ("Observation", "unmapped-result-r1"))
        assert stored is not None and stored.body["code"]["coding"][0]["code"] in LIUHE_UNMAPPED


def _findable(world: World, body: dict[str, Any]) -> bool:
    """Oracle: the result carries an item's LOINC, or its facility's mapped local code."""
    year = world.year
    for coding in body["code"]["coding"]:
        if coding["system"] == "http://loinc.org" and year.catalogue.item_for_loinc(coding["code"]):
            return True
        for facility in (COUNTY, SHIQIAO, LIUHE):
            kind = "lab-item" if body["resourceType"] == "Observation" else "exam-item"
            system = year.consortium.facility(facility).identifier_system(kind)  # type: ignore[union-attr]
            if coding["system"] == system and year.catalogue.item_for_local(
                facility, coding["code"]
            ):
                return True
    return False


def test_the_year_s_answers_name_exactly_each_person_s_results(world: World) -> None:
    """At the year's end, for every generated person, the encounter-start answer names each
    of the person's results coded for an item (and nothing of anyone else); a recognisable
    one carries the mark in the store, and a marked one is recognisable unless expired."""
    year = world.year
    by_person: dict[str, set[str]] = {}
    with world.factory() as session:
        bodies = {
            (r.resource_type, r.id): r.body
            for r in session.scalars(
                select(Resource).where(
                    Resource.resource_type.in_(("Observation", "DiagnosticReport"))
                )
            )
        }
    for patient, rtype, rid, _facility in year.stored:
        if _findable(world, bodies[(rtype, rid)]):
            by_person.setdefault(patient, set()).add(f"{rtype}/{rid}")
    seen_reasons: set[str] = set()
    recognisable = 0
    for patient in year.persons:
        answers = world.ask(Question(patient, YEAR_END))
        named = {c.reference for a in answers for c in a.candidates}
        assert named == by_person.get(patient, set()), patient
        for answer in answers:
            for c in answer.candidates:
                body = bodies[tuple(c.reference.split("/"))]  # type: ignore[index]
                marked = any(
                    t["system"] == MARK_SYSTEM for t in body.get("meta", {}).get("tag", [])
                )
                if c.recognisable:
                    recognisable += 1
                    assert marked, c
                elif marked:
                    assert c.reason == "expired", c
                seen_reasons.add(c.reason or "yes")
    # a year of varied results gives varied answers (not one reason for everything)
    assert recognisable > 0
    assert {"expired", "cancelled", "not-final", "facility-not-qualified"} <= seen_reasons


def test_a_decision_for_every_reason_and_the_month_s_rate(world: World) -> None:
    year = world.year
    catalogue, consortium = year.catalogue, year.consortium
    case = CASES["method-ok"]  # a recognisable HbA1c, asked 2026-05-07
    now = dt.datetime(2026, 5, 7, 3, tzinfo=dt.UTC)
    with world.factory.begin() as session:
        for n, reason in enumerate(catalogue.reasons):
            done = record(
                session,
                catalogue,
                consortium,
                DecisionInput(
                    patient_id=case.patient,
                    order_id=f"MZ20260507-{n:04d}",
                    item_code=case.item,
                    facility_id=LIUHE,
                    doctor="D0101",
                    decision="not-recognised",
                    prior=case.result,
                    reason_code=reason.code,
                    reason_text="患者要求复查" if reason.needs_text else None,
                    decided_at=case.at,
                ),
                now=now,
            )
            assert done.created
            assert done.task["statusReason"]["coding"][0]["code"] == reason.code
        recognised = record(
            session,
            catalogue,
            consortium,
            DecisionInput(
                patient_id=case.patient,
                order_id="MZ20260507-R",
                item_code=case.item,
                facility_id=LIUHE,
                doctor="D0101",
                decision="recognised",
                prior=case.result,
                decided_at=case.at,
            ),
            now=now,
        )
        assert recognised.task["meta"]["tag"][0]["code"] == "HR"
    # a result that is not recognisable cannot be recognised: refused with its reason
    for name in ("eqa-failed", "expired", "facility-not-qualified", "specimen-differs"):
        refused = CASES[name]
        with world.factory.begin() as session, pytest.raises(InvalidRequestError) as error:
            record(
                session,
                catalogue,
                consortium,
                DecisionInput(
                    patient_id=refused.patient,
                    order_id="MZ-REFUSED",
                    item_code=refused.item,
                    facility_id=COUNTY,
                    doctor="D0101",
                    decision="recognised",
                    prior=refused.result,
                    decided_at=refused.at,
                ),
                now=now,
            )
        assert refused.reason in error.value.message
    with world.factory() as session:
        rates = monthly_rates(session, "2026-05", ZONE, facility_id=LIUHE)
    (rate,) = rates
    assert rate.recognised == 1
    assert rate.not_recognised == len(catalogue.reasons)
    assert rate.reasons == {r.code: 1 for r in catalogue.reasons}


def test_a_correction_after_recognition(world: World) -> None:
    """石桥 stores a blood count, a doctor at the county hospital recognises it; the lab then
    corrects it (the mark is kept, the decision is listed for review) and later cancels it
    (no mark, no longer recognisable, listed as withdrawn)."""
    year = world.year
    wbc = year.specs["WBC"]
    marks = ResultMarks(year.catalogue, year.consortium)
    patient = "case-corrected-after"
    body = result("corrected-after-r1", patient, wbc, SHIQIAO, "2026-11-20T08:00:00+08:00")

    def store(version: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
        with world.factory.begin() as session:
            copy = {**version}
            marks.mark(session, [copy], SHIQIAO)
            saved = save_resources(session, [copy], message_id=None, now=when, facility_id=SHIQIAO)
            return saved[0].body

    with world.factory.begin() as session:
        save_resources(
            session,
            [{"resourceType": "Patient", "id": patient}],
            message_id=None,
            now=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        )
    first = store(body, dt.datetime(2026, 11, 20, 1, tzinfo=dt.UTC))
    assert first["meta"]["tag"][0]["code"] == "HR"
    decided = dt.datetime(2026, 11, 21, 2, tzinfo=dt.UTC)
    with world.factory.begin() as session:
        record(
            session,
            year.catalogue,
            year.consortium,
            DecisionInput(
                patient_id=patient,
                order_id="MZ20261121-0001",
                item_code=wbc.code,
                facility_id=COUNTY,
                doctor="D0412",
                decision="recognised",
                prior="Observation/corrected-after-r1",
                decided_at=decided,
            ),
            now=decided,
        )
    with world.factory() as session:
        assert [c.prior for c in changed_after_recognition(session, facility_id=COUNTY)] == []
    corrected = {**body, "status": "corrected", "valueQuantity": {"value": 11.2}}
    second = store(corrected, dt.datetime(2026, 11, 22, 1, tzinfo=dt.UTC))
    assert second["meta"]["versionId"] == "2"
    assert [t["code"] for t in second["meta"]["tag"]] == ["HR"]  # same qualified lab
    asked = Question(patient, at("2026-11-22T10:00:00+08:00"), codes=(wbc.code,))
    assert world.ask(asked)[0].reason is None
    with world.factory() as session:
        (listed,) = changed_after_recognition(session, facility_id=COUNTY)
    assert listed.prior == "Observation/corrected-after-r1" and not listed.withdrawn
    assert listed.version == 2
    cancelled = {**body, "status": "cancelled"}
    third = store(cancelled, dt.datetime(2026, 11, 23, 1, tzinfo=dt.UTC))
    assert "tag" not in third.get("meta", {})
    asked = Question(patient, at("2026-11-23T10:00:00+08:00"), codes=(wbc.code,))
    assert world.ask(asked)[0].reason == "cancelled"
    with world.factory() as session:
        (listed,) = changed_after_recognition(session, facility_id=COUNTY)
    assert listed.withdrawn and listed.version == 3 and listed.status == "cancelled"
