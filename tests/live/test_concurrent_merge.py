"""Several senders about one patient at the same moment, through the real server: every
sender's identifiers and phone end up in the stored Patient, in the version the outbox
delivers, and in a history without gaps or repeats (issue 8, finding 2: lost update).

On PostgreSQL the server runs the requests in parallel transactions; on SQLite writers take
turns, and the same scenario must give no error ("database is locked") and lose nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.identity import national_id_check_char
from adapter.store import make_engine, read_history, read_resource, read_version
from adapter.store import session_factory as make_session_factory
from adapter.store.models import Outbox
from tests.live.server import LiveServer

SENDERS = 8
ROUNDS = 4
# one facility, two systems: a facility's Patient is its own record (decision 0030), keyed on
# its local number, so the race is on one row only when the senders share the facility
FACILITIES = 1
DESTINATION = "county-fhir"


def _consortium(path: Path) -> Path:
    facilities: list[dict[str, Any]] = []
    for f in range(FACILITIES):
        facility: dict[str, Any] = {
            "id": f"facility-{f}",
            "name": f"测试卫生院{f}",
            "level": "county" if f == 0 else "township",
            "namespace": f"https://example.cn/fhir/sid/facility-{f}",
            "sources": [
                {"id": f"lis-{f}-{s}", "format": "hl7v2", "mapping": "_shared"} for s in (0, 1)
            ],
        }
        if f == 0:
            facility["destinations"] = [
                # never contacted: the worker does not run inside `adapter serve` here
                {
                    "id": DESTINATION,
                    "kind": "fhir",
                    "settings": {"base_url": "http://127.0.0.1:9/fhir"},
                }
            ]
        facilities.append(facility)
    data = {
        "version": 1,
        "id": "race-ygt",
        "name": "并发测试医共体",
        "facilities": facilities,
        "routes": [{"from": ["*"], "to": [DESTINATION]}],
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _national_id(round_no: int) -> str:
    # born 1985-01-01, male (an odd 17th digit): the ID agrees with the PID (the patient
    # index warns about an ID whose birth date or sex disagrees with the record)
    first17 = f"43099919850101{round_no:02d}1"
    return first17 + national_id_check_char(first17)


def _message(round_no: int, sender: int, national_id: str) -> bytes:
    """An ORU^R01 of its own (control id, order and specimen numbers) naming the patient by
    the facility's local number of the round, the national ID and this sender's own extra
    number, with this sender's phone."""
    tag = f"{round_no:02d}{sender:02d}"
    segments = [
        "MSH|^~\\&|LIS|HOSP|YGT|YGT|20261122110405||ORU^R01^ORU_R01|"
        f"RACE{tag}|P|2.5.1|||AL|NE|CHN|UNICODE UTF-8",
        f"PID|1||MRN{round_no:02d}^^^HOSP^MR~{national_id}^^^&2.16.156.10011.1.3&ISO^NNCHN"
        f"~MRN{tag}^^^HOSP^MR||"
        f"张^三||19850101|M|||||1390000{tag}^PRN^CP",
        f"ORC|RE|SQ{tag}^HIS|L{tag}^LIS||CM",
        f"OBR|1|SQ{tag}^HIS|L{tag}^LIS|GLU^葡萄糖^99LIS|||20261122063000|||||||"
        "20261122070512||||||||20261122081530||CH|F",
        "OBX|1|NM|GLU^葡萄糖^99LIS||5.2|mmol/L|3.9-6.1|N|||F|||20261122073000",
        f"SPM|1|S{tag}&LIS||SER^血清^HL70487|||||||||||||20261122063000|20261122070530",
    ]
    return ("\r".join(segments) + "\r").encode("utf-8")


def _source(sender: int) -> str:
    return f"lis-{sender % FACILITIES}-{sender // FACILITIES % 2}"


def _send_together(url: str, messages: list[tuple[str, bytes]]) -> list[httpx.Response]:
    """Post every message at once, one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(messages))
    answers: list[httpx.Response | BaseException | None] = [None] * len(messages)

    def send(i: int, source: str, raw: bytes) -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            try:
                answers[i] = client.post(
                    url,
                    content=raw,
                    headers={"X-Source-System": source, "Content-Type": "application/hl7-v2"},
                )
            except BaseException as exc:  # reported by the assertion below
                answers[i] = exc

    threads = [
        threading.Thread(target=send, args=(i, source, raw))
        for i, (source, raw) in enumerate(messages)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    return answers  # type: ignore[return-value]


def _values(resource: dict[str, Any], element: str) -> set[str]:
    return {item["value"] for item in resource.get(element) or []}


def _check_round(session: Session, patient_id: str, tags: list[str], national_id: str) -> None:
    wanted_ids = {f"MRN{t}" for t in tags} | {national_id}
    wanted_phones = {f"1390000{t}" for t in tags}
    stored = read_resource(session, "Patient", patient_id)
    assert stored is not None
    missing_ids = wanted_ids - _values(stored, "identifier")
    missing_phones = wanted_phones - _values(stored, "telecom")
    assert not missing_ids and not missing_phones, (
        f"stored Patient lost identifiers {sorted(missing_ids)} and phones {sorted(missing_phones)}"
    )

    # the outbox's last row for the Patient is the stored version, which has everything
    last = session.scalars(
        select(Outbox)
        .where(Outbox.resource_type == "Patient", Outbox.resource_id == patient_id)
        .order_by(Outbox.id.desc())
        .limit(1)
    ).one()
    assert last.destination == DESTINATION
    assert str(last.version_id) == stored["meta"]["versionId"]
    delivered = read_version(session, "Patient", patient_id, last.version_id)
    assert delivered is not None
    assert wanted_ids <= _values(delivered, "identifier")
    assert wanted_phones <= _values(delivered, "telecom")

    # history: versions 1..n, each once, each keeping what the one before had
    total, versions = read_history(session, "Patient", patient_id, count=100)
    numbers = sorted(v.version_id for v in versions)
    assert numbers == list(range(1, total + 1)), numbers
    assert total == int(stored["meta"]["versionId"])
    previous: set[str] = set()
    for version in sorted(versions, key=lambda v: v.version_id):
        ids = _values(version.body, "identifier")
        assert previous <= ids, f"version {version.version_id} dropped {sorted(previous - ids)}"
        previous = ids


def test_concurrent_senders_about_one_patient_lose_nothing(
    database_url: str, tmp_path: Path
) -> None:
    config = _consortium(tmp_path / "consortium.yaml")
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        with LiveServer(database_url, tmp_path, env={"ADAPTER_CONFIG": str(config)}) as server:
            for round_no in range(ROUNDS):
                national_id = _national_id(round_no)
                tags = [f"{round_no:02d}{s:02d}" for s in range(SENDERS)]
                if round_no % 2:
                    # the patient is known before the race: every sender updates the same row
                    seed = _message(round_no, 99, national_id)
                    first = httpx.post(
                        server.url("/ingest"),
                        content=seed,
                        headers={"X-Source-System": _source(0)},
                        timeout=60,
                    )
                    assert first.status_code == 202, first.text
                    tags.append(f"{round_no:02d}99")
                messages = [
                    (_source(s), _message(round_no, s, national_id)) for s in range(SENDERS)
                ]
                answers = _send_together(server.url("/ingest"), messages)
                assert [a.status_code for a in answers] == [202] * SENDERS, [
                    a.text for a in answers if a.status_code != 202
                ]
                bodies = [a.json() for a in answers]
                assert all(b["status"] == "processed" for b in bodies), bodies
                patients = {r for b in bodies for r in b["resources"] if r.startswith("Patient/")}
                assert len(patients) == 1, patients
                patient_id = patients.pop().split("/", 1)[1]
                with factory() as session:
                    _check_round(session, patient_id, tags, national_id)
            assert "Traceback" not in server.log_text()
    finally:
        engine.dispose()
