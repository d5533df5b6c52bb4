"""Results follow the patient (issue 10 §3-4): routing by care through the real pipeline,
the real worker and real destinations, on SQLite and PostgreSQL (``db``).

The example consortium 青山县医共体 without its static routes: 石桥 (township A) and 柳河
(township B) receive into file-drop folders, the county hospital on a loopback FHIR
server. Fixture messages are ingested with their patient changed to one person,
张秀英 (430999196704151244); time is the test's (``now=`` to the pipeline, the worker's
clock), never a sleep. The activity window is set to 60 days in the consortium file so
that A's own result has lapsed when the referral's 30 days after closing are over.

    day 0   A's lab result for 张秀英                 -> A only (A cares: activity)
    day 10  A refers her up to the county (up-slip)   -> A and the county; the county
            gets her recent history once (A's result of day 0): it started caring
    day 20  the county's lab result for her           -> A and the county, not B
            the county's result for 何春梅 (no relation to A) -> the county only
    day 30  the referral's loop closes
    day 71  the county's next result for her          -> the county only: A's referral
            ended on day 60 (closed + 30 days) and its activity on day 70 (its last item,
            the slip of day 10, + 60 days); the county still cares (its result of day 20)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium
from adapter.delivery.service import build_worker
from adapter.delivery.worker import DeliveryWorker, WorkerOptions
from adapter.identity import keys_of, person_of
from adapter.identity.index import review
from adapter.outbound.bundle import SEQUENCE_URL
from adapter.pipeline import Pipeline, Receipt, Translator
from adapter.pipeline.catchup import IdentityCare
from adapter.store import care
from adapter.store.models import Outbox
from tests.integration.delivery_receiver import Receiver, running_receiver
from tests.integration.delivery_support import T0, Clock

ROOT = Path(__file__).resolve().parents[2]
A, B, COUNTY = "shiqiao-township-centre", "liuhe-township-centre", "qingshan-county-hospital"
ID_CARD, NAME, BORN = "430999196704151244", "张秀英", "19670415"  # the up-slip's patient
OTHER = "430999197603182425"  # 何春梅, the county result's own patient


def _consortium(tmp_path: Path, county_url: str, activity_days: int) -> Consortium:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    data.pop("routes")  # routing by care: the default without routes
    data["care"] = {"windows": {"activity_days": activity_days}}
    for facility in data["facilities"]:
        if facility["id"] == COUNTY:
            facility["destinations"] = [
                {
                    "id": "county-hospital-fhir",
                    "kind": "fhir",
                    "settings": {"base_url": county_url, "timeout_seconds": 5},
                }
            ]
        else:
            folder = tmp_path / facility["id"]
            folder.mkdir()
            facility["destinations"] = [
                {
                    "id": f"{facility['id']}-files",
                    "kind": "file",
                    "settings": {"path": str(folder), "layout": "bundle", "fsync": False},
                }
            ]
    return Consortium.model_validate(data)


class World:
    """The pipeline, the worker and what each facility has received."""

    def __init__(
        self,
        tmp_path: Path,
        factory: sessionmaker[Session],
        receiver: Receiver,
        *,
        activity_days: int = 60,
    ):
        self.tmp_path, self.factory, self.receiver = tmp_path, factory, receiver
        self.consortium = _consortium(tmp_path, receiver.base_url, activity_days)
        translator = Translator(
            self.consortium,
            mappings_dir=ROOT / "mappings",
            max_bytes=5 * 1024 * 1024,
            default_timezone="Asia/Shanghai",
        )
        self.pipeline = Pipeline.of(translator, factory)
        self.clock = Clock(T0)
        self.worker: DeliveryWorker = build_worker(
            self.consortium, factory, worker_id="w1", options=WorkerOptions(batch_size=50)
        )
        self.worker.clock = self.clock

    def ingest(self, raw: bytes, source: str, day: float) -> str:
        """Ingest on that day; the consortium person of the message's patient."""
        self.clock.now = T0 + timedelta(days=day)
        result = self.pipeline.ingest(raw, Receipt(source, "cli", received_at=self.clock.now))
        assert result.status.startswith("processed"), result.issues
        return self.person(next(r for r in result.resources if r.startswith("Patient/")))

    def person(self, patient: str) -> str:
        """The consortium person of ``Patient/<id>`` (care is kept per person)."""
        with self.factory() as session:
            return person_of(session, patient.split("/", 1)[1])

    def deliver(self) -> None:
        self.worker.drain()

    def files(self, facility: str) -> list[dict[str, Any]]:
        """The entries of every Bundle written to the facility's folder."""
        entries = []
        for path in sorted((self.tmp_path / facility).glob("*.json")):
            entries.extend(json.loads(path.read_text(encoding="utf-8"))["entry"])
        return entries

    def refs(self, facility: str) -> set[str]:
        if facility == COUNTY:
            return set(self.receiver.refs())
        return {e["request"]["url"] for e in self.files(facility)}

    def close(self) -> None:
        self.worker.close()


@pytest.fixture
def world(tmp_path: Path, session_factory: sessionmaker[Session]) -> Iterator[World]:
    with running_receiver() as receiver:
        built = World(tmp_path, session_factory, receiver)
        try:
            yield built
        finally:
            built.close()


def _shiqiao_result() -> bytes:
    raw = (ROOT / "fixtures/hl7v2/oru/shiqiao-lis/cbc-18-st.hl7").read_bytes()
    ours = f"PID|1||{ID_CARD}^^^公安部^ID||张^秀英||{BORN}000000|F|||石桥镇枫树村一组"
    return re.sub(r"PID\|[^\r\n]*", ours, raw.decode("utf-8")).encode("utf-8")


def _up_slip() -> bytes:
    return (ROOT / "fixtures/xml/referral/shiqiao-his/up-slip.xml").read_bytes()


def _county_result(*, ours: bool, number: str = "0007") -> bytes:
    raw = (ROOT / "fixtures/hl7v2/oru/county-lis/cbc-gb18030.hl7").read_bytes()
    text = raw.decode("gb18030").replace("HK2611220007", f"HK261122{number}")
    text = text.replace("2611220018", f"26112{number}18").replace(
        "HK202611220951000003", f"HK20261122095100{number}"
    )
    if ours:
        # the ID number first: it holds the birth date
        text = text.replace(OTHER, ID_CARD).replace("何春梅", NAME).replace("19760318", BORN)
        text = text.replace("MZ20261122018", "MZ20261122901")
    return text.encode("gb18030")


def _reports(refs: set[str]) -> set[str]:
    return {r for r in refs if r.startswith("DiagnosticReport/")}


def test_results_follow_the_patient_to_the_facilities_caring_for_her(world: World) -> None:
    # day 0: A's own result; only A cares for her
    world.ingest(_shiqiao_result(), "shiqiao-lis", 0)
    world.deliver()
    a_report = _reports(world.refs(A))
    assert len(a_report) == 1
    assert world.refs(COUNTY) == set() and world.refs(B) == set()
    patient = next(r for r in world.refs(A) if r.startswith("Patient/"))
    person = world.person(patient)

    # day 10: A refers her up; the county starts caring and gets her history once
    world.ingest(_up_slip(), "shiqiao-his", 10)
    world.deliver()
    referral = {r for r in world.refs(A) if r.startswith("ServiceRequest/")}
    assert len(referral) == 1 and referral <= world.refs(COUNTY)
    assert a_report <= world.refs(COUNTY)  # the catch-up: A's result of day 0
    assert patient in world.refs(COUNTY)
    assert world.refs(B) == set()
    with world.factory() as session:
        rows = care.list_care(session, persons=keys_of(session, person))
        why = {
            r.reason
            for r in session.scalars(
                select(Outbox).where(
                    Outbox.destination == "county-hospital-fhir",
                    Outbox.resource_type == "DiagnosticReport",
                )
            )
        }
    assert {(r.facility_id, r.source) for r in rows} == {
        (A, "activity"),
        (A, "referral"),
        (COUNTY, "referral"),
    }
    [catch_up] = why
    assert catch_up.startswith(f"catch-up: {COUNTY} started caring (referral ServiceRequest/")

    # day 20: the county's result reaches A and the county, not B
    before_a = world.refs(A)
    world.ingest(_county_result(ours=True), "county-lis", 20)
    world.deliver()
    county_report = _reports(world.refs(COUNTY)) - a_report
    assert len(county_report) == 1
    assert county_report <= world.refs(A)
    assert world.refs(B) == set()

    # ... a person with no relation to A: the county only
    before_a = world.refs(A)
    county_before = world.refs(COUNTY)
    world.ingest(_county_result(ours=False, number="0008"), "county-lis", 20)
    world.deliver()
    other = _reports(world.refs(COUNTY)) - county_before
    assert len(other) == 1
    assert world.refs(A) == before_a and world.refs(B) == set()

    # day 30: the loop closes; day 71: A's referral (closed + 30 d) and activity are over
    [ref] = referral
    with world.factory.begin() as session:
        moment = T0 + timedelta(days=30)
        closed = care.close_referral(
            session, ref, at=moment, end=moment + timedelta(days=30), detail="test"
        )
    assert closed == 2  # A and the county
    county_before = world.refs(COUNTY)
    world.ingest(_county_result(ours=True, number="0009"), "county-lis", 71)
    world.deliver()
    late = _reports(world.refs(COUNTY)) - county_before
    assert len(late) == 1  # the county still cares (its own activity)
    assert not (late & world.refs(A))
    assert world.refs(A) == before_a and world.refs(B) == set()

    # every delivery to A carries A's sequence number: 1, 2, 3 ... no gap, no repeat
    numbers = [
        x["valueInteger"]
        for e in world.files(A)
        for x in e.get("extension", [])
        if x["url"] == SEQUENCE_URL
    ]
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    with world.factory() as session:
        to_a = session.scalars(select(Outbox).where(Outbox.destination == f"{A}-files")).all()
    assert {r.state for r in to_a} == {"delivered"}
    assert sorted(numbers) == sorted(r.sequence for r in to_a if r.sequence is not None)
    assert all(r.reason and r.reason.startswith(("care: ", "catch-up: ")) for r in to_a)


def test_a_closed_referral_keeps_a_receiving_for_30_days_then_stops(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    """The referral alone: A's activity window (20 days here) is over before the loop
    closes, so what A receives after day 30 it receives through the referral."""
    with running_receiver() as receiver:
        world = World(tmp_path, session_factory, receiver, activity_days=20)
        try:
            world.ingest(_shiqiao_result(), "shiqiao-lis", 0)
            world.ingest(_up_slip(), "shiqiao-his", 10)  # A's activity runs to day 30
            world.deliver()
            [referral] = {r for r in world.refs(A) if r.startswith("ServiceRequest/")}
            with world.factory.begin() as session:
                moment = T0 + timedelta(days=30)
                care.close_referral(
                    session, referral, at=moment, end=moment + timedelta(days=30), detail="test"
                )

            before = _reports(world.refs(A))
            world.ingest(_county_result(ours=True, number="0011"), "county-lis", 59)
            world.deliver()
            [still] = _reports(world.refs(A)) - before  # day 59: closed 29 days ago
            with world.factory() as session:
                [row] = session.scalars(
                    select(Outbox).where(
                        Outbox.destination == f"{A}-files",
                        Outbox.resource_id == still.split("/", 1)[1],
                    )
                ).all()
            until = (T0 + timedelta(days=60)).date().isoformat()
            assert row.reason == f"care: referral {referral} (until {until})"  # nothing else

            county_before = world.refs(COUNTY)
            before = world.refs(A)
            world.ingest(_county_result(ours=True, number="0012"), "county-lis", 61)
            world.deliver()
            assert len(_reports(world.refs(COUNTY)) - county_before) == 1
            assert world.refs(A) == before  # day 61: closed 31 days ago, nothing more
        finally:
            world.close()


def test_a_revocation_withdraws_what_is_queued_within_one_worker_pass(world: World) -> None:
    person = world.ingest(_shiqiao_result(), "shiqiao-lis", 0)
    world.ingest(_up_slip(), "shiqiao-his", 1)
    world.ingest(_county_result(ours=True), "county-lis", 2)  # queued for A, not yet sent
    with world.factory.begin() as session:
        care.revoke(
            session, person, A, at=world.clock.now, actor="医务科 王主任", note="patient request"
        )
    world.deliver()
    assert world.refs(A) == set()  # nothing left for A after the revocation
    assert _reports(world.refs(COUNTY))  # the county still receives
    with world.factory() as session:
        withdrawn = session.scalars(select(Outbox).where(Outbox.destination == f"{A}-files")).all()
    assert withdrawn and {r.state for r in withdrawn} == {"dead"}
    assert all(r.last_error.startswith(f"withdrawn: {A} no longer cares") for r in withdrawn)
    assert all(r.sequence is None for r in withdrawn)  # no number used: no gap at A


def test_a_destination_down_for_a_day_catches_up_without_gap_or_repeat(world: World) -> None:
    receiver = world.receiver
    receiver.bundle_rule = lambda n: (503, {}, None)  # the county's server is down
    world.ingest(_shiqiao_result(), "shiqiao-lis", 0)
    world.ingest(_up_slip(), "shiqiao-his", 0.1)
    for n, day in enumerate((0.2, 0.4, 0.6, 0.8)):
        world.ingest(_county_result(ours=True, number=f"00{n + 1}0"), "county-lis", day)
        world.deliver()
    assert receiver.refs() == []
    world.clock.now = T0 + timedelta(days=1.2)  # a day later it is back
    receiver.bundle_rule = None
    for _ in range(30):
        world.deliver()
        world.clock.advance(300)
    numbers = [
        x["valueInteger"]
        for e in receiver.entries
        for x in e.get("extension", [])
        if x["url"] == SEQUENCE_URL
    ]
    with world.factory() as session:
        rows = session.scalars(
            select(Outbox).where(Outbox.destination == "county-hospital-fhir")
        ).all()
    assert {r.state for r in rows} == {"delivered"}
    sent = {r.sequence for r in rows if r.sequence is not None}
    # what arrived: every number given, each once (a resend after 503 keeps its number)
    assert sorted(numbers) == sorted(sent) == list(range(1, len(sent) + 1))
    assert len(_reports(set(receiver.refs()))) == 5  # A's result (catch-up) + the county's 4


# -- a merge and an unmerge (issue 10 §4) ------------------------------------------------------
# 李桂兰 is known at 石桥 (A) and at 柳河 (B) under each facility's own patient number, with no
# national ID and another phone and village at each: the index cannot tell they are one
# person (not even a review item), until someone merges them.
_LI_AT_A = "PID|1||SQ20260001^^^^PI||李^桂兰||19580307000000|F|||石桥镇石桥村一组||13900000001"
_LI_AT_B = "PID|1||LH20260002^^^^PI||李^桂兰||19580307000000|F|||柳河镇杨家湾村9组||13900000002"


def _lab(facility: str, n: int) -> bytes:
    """A lab result of 李桂兰 from the facility's LIS, numbered ``n`` (its own order,
    specimen and message numbers: a new report each time)."""
    if facility == A:
        raw = (ROOT / "fixtures/hl7v2/oru/shiqiao-lis/cbc-18-st.hl7").read_text(encoding="utf-8")
        numbers = {"YY0000123457": "MSG", "SQ20261124005": "ORD", "YY2611240003": "FIL"}
        numbers["SQ26112400031"], pid = "SPM", _LI_AT_A
    else:
        raw = (ROOT / "fixtures/hl7v2/oru/liuhe-lis/cardiac-st.hl7").read_text(encoding="utf-8")
        numbers = {"YY0000088301": "MSG", "LH20261125001": "ORD", "YY2611250001": "FIL"}
        numbers["LH26112500002"], pid = "SPM", _LI_AT_B
    for old, kind in numbers.items():
        raw = raw.replace(old, f"{kind}{facility[:2].upper()}{n:04d}")
    return re.sub(r"PID\|[^\r\n]*", pid, raw).encode("utf-8")


def test_a_merge_makes_both_facilities_receive_and_an_unmerge_undoes_it(world: World) -> None:
    source = {A: "shiqiao-lis", B: "liuhe-lis"}
    sent: dict[str, set[str]] = {A: set(), B: set()}

    def result(facility: str, n: int, day: float) -> tuple[str, set[str]]:
        """Ingest and deliver one result; (its person, the reports each facility got)."""
        before = {f: _reports(world.refs(f)) for f in (A, B)}
        person = world.ingest(_lab(facility, n), source[facility], day)
        world.deliver()
        new = {f: _reports(world.refs(f)) - before[f] for f in (A, B)}
        sent[facility] |= new[facility]
        return person, {f for f in (A, B) if new[f]}

    # day 0 / 1: each facility's own result reaches that facility only
    person_a, got = result(A, 1, 0)
    assert got == {A}
    person_b, got = result(B, 1, 1)
    assert got == {B}
    assert person_a != person_b  # not linked by the index
    with world.factory() as session:
        assert review.list_reviews(session)[0] == 0  # not even a possible match

    # day 2: a reviewer merges B's record into A's person (as POST /patient-index/merges
    # and `adapter patients merge` do: the index's merge, then the catch-up it starts)
    day2 = T0 + timedelta(days=2)
    with world.factory.begin() as session:
        watch = IdentityCare(session, world.consortium, [person_a, person_b], day2)
        merge_id, changed = review.merge_persons(
            session,
            person_a,
            person_b,
            actor="信息科 陈工",
            reason="同一患者 (身份证核对)",
            rule_version=1,
            now=day2,
        )
        assert watch.finish(changed, reason=f"merge {merge_id}") > 0
    world.clock.now = day2
    world.deliver()
    # both facilities' histories follow: each gets the other's earlier result, once
    assert sent[A] <= _reports(world.refs(B)) and sent[B] <= _reports(world.refs(A))
    with world.factory() as session:
        caught = session.scalars(
            select(Outbox).where(
                Outbox.reason.like("catch-up: %"), Outbox.resource_type == "DiagnosticReport"
            )
        ).all()
    assert {(r.destination, r.reason) for r in caught} == {
        (f"{A}-files", f"catch-up: {A} started caring (merge {merge_id})"),
        (f"{B}-files", f"catch-up: {B} started caring (merge {merge_id})"),
    }

    with world.factory() as session:  # what is kept under B's old person follows too
        assert person_b in keys_of(session, person_a)

    # day 3 / 4: a result at either facility reaches both
    person, got = result(A, 2, 3)
    assert person == person_a and got == {A, B}
    person, got = result(B, 2, 4)
    assert person == person_a and got == {A, B}
    with world.factory() as session:
        to_b = session.scalars(
            select(Outbox).where(
                Outbox.destination == f"{B}-files", Outbox.resource_type == "DiagnosticReport"
            )
        ).all()
    from_a = [r for r in to_b if f"DiagnosticReport/{r.resource_id}" in sent[A]]
    assert from_a and all(r.person_id == person_a and r.care_facility == B for r in from_a)
    routed = [r for r in from_a if r.reason and not r.reason.startswith("catch-up: ")]
    assert routed and all(r.reason and "activity" in r.reason for r in routed)

    # day 5: the merge is undone; day 6 / 7: each facility's results stay there again
    with world.factory.begin() as session:
        review.unmerge(
            session,
            merge_id,
            actor="信息科 陈工",
            reason="合并错误",
            block=True,
            rule_version=1,
            now=T0 + timedelta(days=5),
        )
    with world.factory() as session:
        assert person_b not in keys_of(session, person_a)
    person, got = result(A, 3, 6)
    assert person == person_a and got == {A}
    person, got = result(B, 3, 7)
    assert person == person_b and got == {B}
    assert world.refs(COUNTY) == set()  # the county never cared for her
