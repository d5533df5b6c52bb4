"""The named steps of storing one translated message, each a small function with one job,
run in order in the message's transaction (adapter/pipeline/ingest.py opens it):

    resolve_identity -> read_referral_status -> merge_with_stored -> flag_referral_paths
    -> mark_recognisable_results -> save
    -> apply_referral_status
    -> advance_referrals -> note_referral_ledger
    -> note_care -> route -> trace -> enqueue -> record_result -> audit

Each step reads and extends one ``Work``. A new concern (patient resolution across the
consortium, routing by the patient's registered facility) is a new or richer step here,
not an edit of a long method. A translation that failed is not stored: ``quarantine``
settles the message instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session

from adapter import audit
from adapter.consortium import Consortium, Facility
from adapter.errors import Issue
from adapter.fhir.index_values import patient_key
from adapter.identity import keys_of, person_of
from adapter.identity.features import national_id_warnings
from adapter.identity.index.publish import outbox_rows, publish_persons
from adapter.identity.index.resolve import index_patients
from adapter.identity.persons import KEYS, RECORDS
from adapter.identity.rules import rules_at
from adapter.pipeline.catchup import history_rows
from adapter.pipeline.merge import merge_stored, reads_stored
from adapter.pipeline.provenance import provenance_for
from adapter.pipeline.receipt import Channel
from adapter.pipeline.results import PROCESSED, QUARANTINED, WARNINGS
from adapter.pipeline.translator import WHOLE_MESSAGE, Outcome
from adapter.recognition.marks import ResultMarks
from adapter.referral.ledger_step import note_referral_ledger
from adapter.referral.messages import advance_referrals
from adapter.referral.paths import flag_referral_paths
from adapter.referral.status_messages import apply_referral_status, read_referral_status
from adapter.routing import Recipient, care_facts, describe, recipients, routed, routes_by_care
from adapter.routing.care import CareFact
from adapter.store import care, enqueue_many, lock_resources, save_resources, set_message_result
from adapter.store.bound import bind_of
from adapter.store.loaded import loaded
from adapter.store.models import InboundMessage
from adapter.store.resources import LockedRows, Prepared, Saved, flush_index_rows

log = logging.getLogger(__name__)
# a person's ids and open care rows, one statement (by dialect: is PostgreSQL)
_OPEN_CARE = {pg: care.open_rows_query(KEYS, on_postgresql=pg) for pg in (False, True)}
# SQLite, a bulk batch: every row of a person's ids and the ids, read once a batch (0148)
_EVERY_CARE = care.every_row_query(KEYS)
# PostgreSQL: that read and a message's first activity upsert in one statement (0122)
_OPEN_AND_NOTED = care.open_and_noted_query(_OPEN_CARE[True])


@dataclass(slots=True)
class Work:
    """One message on its way into the store, in its transaction."""

    session: Session
    message: InboundMessage
    consortium: Consortium
    facility: Facility
    zone: ZoneInfo
    moment: datetime
    resources: list[dict[str, Any]]  # as translated; as to be stored after merge_with_stored
    policies: dict[Any, dict[str, Any]]  # (type, id) -> the template's on_conflict
    issues: list[Issue]
    origins: dict[Any, str | None] = field(default_factory=dict)  # (type, id) -> made from
    channel: str | None = None  # how it came in (receipt.py); "reprocess" for a reprocess
    locked: LockedRows | None = None
    saved: list[Saved] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    # facilities that started caring for a person in this message: (person, facility, rows)
    started: list[tuple[str, str, list[care.CareRow]]] = field(default_factory=list)
    _persons: dict[str, str] = field(default_factory=dict)
    _open: dict[str, list[care.CareRow]] = field(default_factory=dict)  # person -> open rows
    _caring: dict[str, dict[str, list[care.CareRow]]] = field(default_factory=dict)
    _keys: dict[str, set[str]] = field(default_factory=dict)
    _records: dict[str, list[str]] = field(default_factory=dict)  # person -> records_of
    # referral Task checks (adapter/referral/messages.py has_tasks): records -> (Tasks the
    # message had saved when checked, whether any stored Task is about the records)
    task_checks: dict[tuple[str, ...], tuple[int, bool]] = field(default_factory=dict)
    mapping: str | None = None  # the mapping set that translated it: "<folder>@<fingerprint>"
    # referral Task id -> (status, businessStatus) as the source wrote them, before the
    # merge keeps the stored Task (adapter/referral/status_messages.py)
    written_status: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    # the recognition catalogue's marks (adapter/recognition/marks.py); None: not marked
    marks: ResultMarks | None = None
    # what a translation worker derived from the resources (adapter/store/resources.py)
    prepared: Prepared | None = None
    _message_id: str | None = None  # the row's id, read once (``message_id``)

    @property
    def message_id(self) -> str:
        """``message.id``, read once (an ORM attribute's read costs ~2,800 instructions, and
        the steps name the message in every outbox row: decision 0155)."""
        if self._message_id is None:
            self._message_id = self.message.id
        return self._message_id

    @property
    def warned(self) -> bool:
        return any(i.severity == "warning" for i in self.issues)

    def person(self, patient_key: str) -> str:
        """The consortium person of ``Patient/<id>`` (adapter.identity.person_of)."""
        if patient_key not in self._persons:
            self._persons[patient_key] = person_of(self.session, patient_key.split("/", 1)[-1])
        return self._persons[patient_key]

    def caring(self, person: str) -> dict[str, list[care.CareRow]]:
        """Facility -> its relationships open now with the person (under the person's id,
        any record linked to it or a person merged into it: care follows a merge)."""
        if person not in self._caring:
            self._caring[person] = care.caring_of(self.open_care(person))
        return self._caring[person]

    def open_care(self, person: str) -> list[care.CareRow]:
        """The relationships open now under the person's ids (revocations too), read with
        the ids in one statement (adapter.identity.persons.KEYS)."""
        if person not in self._open:
            statement = _OPEN_CARE[bind_of(self.session).dialect.name == "postgresql"]
            self._open[person] = care.open_rows_of(
                self.session, statement, _EVERY_CARE, {"id": person, "at": self.moment}
            )
        return self._open[person]

    def keys(self, patient_or_person: str) -> set[str]:
        """adapter.identity.keys_of, read once per message: the steps after
        resolve_identity write care and resources, never links between records."""
        if patient_or_person not in self._keys:
            self._keys[patient_or_person] = keys_of(self.session, patient_or_person)
        return self._keys[patient_or_person]

    def records(self, person: str) -> list[str]:
        """adapter.identity.records_of, read once per message (like ``keys``: records are
        linked in resolve_identity, before every step that asks), on the session's
        connection: the referral steps ask for every event of a message."""
        if person not in self._records:
            found = self.core(RECORDS, {"person": person}).scalars()
            self._records[person] = list(found) or [person]
        return self._records[person]

    def core(self, statement: Executable, parameters: dict[str, Any]) -> CursorResult[Any]:
        """A Core statement built once, on the session's connection (the ORM's execution
        path costs ~0.3 ms a statement), after the flush the ORM's execute would do."""
        self.session.flush()
        return self.session.connection().execute(statement, parameters)

    def wrote_care(self, person: str, row: care.CareRow) -> None:
        """``row`` (under one of the person's ids) as this transaction just wrote it."""
        if person in self._open:
            rows = [r for r in self._open[person] if r.id != row.id]
            if row.open_at(self.moment):
                rows = sorted([*rows, row], key=lambda r: r.id)
            self._open[person] = rows
        self._caring.pop(person, None)

    def forget_care(self, person: str) -> None:
        self._open.pop(person, None)
        self._caring.pop(person, None)


def resolve_identity(work: Work) -> None:
    """Who the message's patients are across the consortium (adapter/identity/index): each
    Patient record is checked (the birth date and sex in its national ID against its own:
    a disagreement is a located warning) and linked to a consortium person under the
    matching rules, serialised on its keys (one writer per person). With publish_persons, the
    persons that changed are saved as Patients and go to the destinations subscribed to
    identity changes."""
    patients = [r for r in work.resources if r.get("resourceType") == "Patient"]
    if not patients:
        return
    rules = rules_at(work.consortium.patient_index.matching_rules)
    for patient in patients:
        where = work.origins.get(("Patient", patient["id"])) or WHOLE_MESSAGE
        for text in national_id_warnings(patient, rules.identifiers.national_id):
            work.issues.append(
                Issue("warning", "business-rule", text, location=where, expression="Patient")
            )
    outcome = index_patients(
        work.session, patients, facility_id=work.facility.id, rules=rules, now=work.moment
    )
    for record, person in outcome.persons.items():  # person_of, known without a read
        work._persons[f"Patient/{record}"] = person
    for record, text in outcome.conflicts.items():
        where = work.origins.get(("Patient", record)) or WHOLE_MESSAGE
        work.issues.append(
            Issue("warning", "business-rule", text, location=where, expression="Patient")
        )
    config = work.consortium.patient_index
    if config.publish_persons:
        saved = publish_persons(
            work.session, outcome.changed_persons, now=work.moment, message_id=work.message_id
        )
        work.outbox.extend(outbox_rows(saved, config.deliver_to, work.message_id))


def merge_with_stored(work: Work) -> None:
    """Lock first, then read, merge and write under that lock (docs/decisions/0009): another
    message about the same patient waits here until this one commits, then merges with what
    it wrote. Each resource is merged by its template's on_conflict (adapter/pipeline/merge.py)."""
    merging = [
        (r["resourceType"], r["id"]) for r in work.resources if reads_stored(r, work.policies)
    ]
    # On PostgreSQL only the rows the merge reads are locked here: ``save`` locks the others
    # that change (``_current_rows``), and never one stored unchanged. Locking every resource
    # of the message held the facility's Organization, repeated unchanged by every document,
    # until the batch committed: two ``sync --jobs`` children (or two writers of any kind)
    # took turns on that one row, batch after batch (decision 0097). SQLite holds its write
    # lock anyway: one read of every row, as before.
    postgres = bind_of(work.session).dialect.name == "postgresql"
    work.locked = lock_resources(
        work.session,
        merging if postgres else ((r["resourceType"], r["id"]) for r in work.resources),
        create_missing=merging,
        now=work.moment,
    )
    merged: list[dict[str, Any]] = []
    read, same = work.locked.body, partial(_same_person, work)
    for resource in work.resources:
        resource, conflicts = merge_stored(resource, read, work.policies, same=same)
        merged.append(resource)
        where = work.origins.get((resource["resourceType"], resource["id"]))
        for conflict in conflicts:
            conflict.location = conflict.location or where or WHOLE_MESSAGE
        work.issues.extend(conflicts)
    work.resources = merged


def _same_person(work: Work, stored: Any, given: Any) -> bool:
    """Whether two Patient references name records of one person (the patient index): a
    receiver's answer names its own record of the patient of the sender's slip."""
    refs = [v.get("reference") if isinstance(v, dict) else None for v in (stored, given)]
    if not all(isinstance(r, str) and r.startswith("Patient/") for r in refs):
        return False
    return work.person(refs[0]) == work.person(refs[1])


def mark_recognisable_results(work: Work) -> None:
    """Pipeline step (before ``save``): the recognition mark on the message's results, when
    a catalogue is configured with ``mark_results`` (the default)."""
    if work.marks is not None:
        work.marks.mark(work.session, work.resources, work.facility.id)


def save(work: Work) -> None:
    """Store each resource as a new version (history and search index rows with it)."""
    work.saved = save_resources(
        work.session,
        work.resources,
        message_id=work.message_id,
        now=work.moment,
        facility_id=work.facility.id,
        zone=work.zone,
        locked=_covering(work.locked, work.resources),
        prepared=work.prepared,
    )


def _covering(locked: LockedRows | None, resources: list[dict[str, Any]]) -> LockedRows | None:
    """``locked`` when it holds every one of ``resources`` (SQLite), else None: the store then
    reads the rows itself and locks those that change (PostgreSQL: ``merge_with_stored``
    locked only the merged ones, which this transaction keeps holding)."""
    if locked is None or any((r["resourceType"], r["id"]) not in locked.keys for r in resources):
        return None
    return locked


def note_care(work: Work) -> None:
    """The care relationships the message shows (adapter.routing.care), kept under the
    Patient record they are about and read for its consortium person (every record of it:
    adapter.identity.keys_of), so that a merge brings them to the person and an unmerge
    takes them away with the record. A facility that starts caring for a person here is
    remembered in ``work.started``: it gets the person's recent history (``route``)."""
    facts = care_facts(
        work.consortium,
        work.facility.id,
        [s.body for s in work.saved],
        work.moment,
        # a new version's patient key is its body's, worked out by the save; an unchanged
        # one's is the stored row's, which older code may have written: worked out again
        [s.patient_key if s.changed else patient_key(s.body) for s in work.saved],
    )
    if not facts:
        return
    persons = {work.person(f.patient) for f in facts}
    before: dict[str, set[str]] = {}  # each person's caring facilities before the facts
    facts = _first_noted_with_its_read(work, facts, persons, before)
    before.update({p: set(work.caring(p)) for p in persons if p not in before})
    reread: set[str] = set()  # persons whose rows a write changed unseen
    for fact in facts:
        record = fact.patient.split("/", 1)[-1]
        person = work.person(fact.patient)
        if fact.source == "activity":
            assert fact.end is not None
            row = care.note_activity(
                work.session,
                record,
                fact.facility,
                at=fact.start,
                until=fact.end,
                detail=fact.detail,
            )
            work.wrote_care(person, row)  # as written: no second read of the person's care
        elif fact.source == "referral":
            care.note_referral(
                work.session,
                record,
                fact.facility,
                fact.ref,
                at=fact.start,
                end=fact.end,
                detail=fact.detail,
            )
            reread.add(person)
        elif fact.source == "registered":
            care.register(
                work.session,
                record,
                fact.facility,
                at=fact.start,
                detail=fact.detail,
                also=work.keys(record),
            )
            reread.add(person)
    for person in persons:
        if person in reread:
            work.forget_care(person)
        now = work.caring(person)
        for facility in sorted(set(now) - before[person]):
            work.started.append((person, facility, now[facility]))


def _first_noted_with_its_read(
    work: Work, facts: list[CareFact], persons: set[str], before: dict[str, set[str]]
) -> list[CareFact]:
    """PostgreSQL, one person whose open care rows are not read yet and a first fact that
    is an activity: the read and that fact's upsert in one statement (decision 0122: one
    round trip fewer a message), the person's rows kept as read before it (its caring
    facilities into ``before``) and the row then as written: what the read and
    ``note_activity`` one after the other give. The facts left to note."""
    first = facts[0]
    if (
        len(persons) != 1
        or first.source != "activity"
        or bind_of(work.session).dialect.name != "postgresql"
    ):
        return facts
    (person,) = persons
    if person in work._open:
        return facts
    assert first.end is not None
    rows, row = care.open_and_note_activity(
        work.session,
        _OPEN_AND_NOTED,
        {"id": person, "at": work.moment},
        first.patient.split("/", 1)[-1],
        first.facility,
        at=first.start,
        until=first.end,
        detail=first.detail,
    )
    work._open[person] = rows
    before[person] = set(work.caring(person))
    work.wrote_care(person, row)
    return facts[1:]


def route(work: Work) -> None:
    """One outbox row per changed resource and destination that receives it, with the
    reason (adapter/routing): the static routes, and, routing by care, every facility
    caring for the resource's person. Resources about no patient (Organization, the
    document Bundle) go with the message's patients. A facility that started caring in
    this message first gets the person's recent history, once (``catch_up``)."""
    by_care = routes_by_care(work.consortium)
    if by_care and work.started:
        sent = {(s.resource_type, s.id) for s in work.saved if s.changed}
        for person, facility, rows in work.started:
            catch_up(work, person, facility, rows, skip=sent)
    with_message: dict[str, tuple[Recipient, str]] = {}
    loose: list[Saved] = []
    # the recipients of a type of resource about a person (or none) are chosen once: a lab
    # message's results are one type about one patient, and nothing here changes the care
    chosen_for: dict[tuple[str, str | None], list[Recipient]] = {}
    for item in work.saved:
        if not item.changed:
            continue  # identical content: nothing new to deliver
        person, caring = None, None
        if by_care and item.patient_key:
            person = work.person(item.patient_key)
            caring = work.caring(person)
        chosen = chosen_for.get((item.resource_type, person))
        if chosen is None:
            chosen = chosen_for[(item.resource_type, person)] = recipients(
                work.consortium, work.facility.id, item.resource_type, caring
            )
        if by_care and not item.patient_key:
            loose.append(item)
        for recipient in chosen:
            if recipient.care_facility is not None and person is not None:
                with_message.setdefault(recipient.destination, (recipient, person))
            _queue(work, item, recipient, person)
    for item in loose:  # after every patient's resource: their care is known
        static = {d for d, _ in routed(work.consortium, work.facility.id, item.resource_type)}
        for recipient, person in with_message.values():
            if recipient.destination not in static:
                _queue(work, item, recipient, person)


def catch_up(
    work: Work, person: str, facility: str, rows: list[care.CareRow], *, skip: set[Any]
) -> None:
    """What a facility that starts caring for a person gets of the person's history, once
    (adapter/pipeline/catchup.py)."""
    if "Provenance" in work.consortium.care.catch_up.result_types:
        flush_index_rows(work.session)  # a batch's held Provenance rows are read too (0050)
    patients = [f"Patient/{r}" for r in {person, *work.records(person)}]
    work.outbox += history_rows(
        work.session,
        work.consortium,
        facility,
        patients,
        moment=work.moment,
        why=f"catch-up: {facility} started caring ({describe(rows[0])})",
        person=person,
        message_id=work.message_id,
        skip=skip,
    )


def trace(work: Work) -> None:
    """Provenance of the versions this message made (adapter/pipeline/provenance.py). It is
    delivered only where a route names Provenance among its resource types: a route for
    every type (``*``) and routing by care carry the clinical resources, not their trail."""
    made = [s for s in work.saved if s.changed]
    if not made:
        return  # nothing new: the versions already have their Provenance
    body = provenance_for(work.message, made, mapping=work.mapping, recorded=work.moment)
    named = [
        (destination, number)
        for destination, number in routed(work.consortium, work.facility.id, "Provenance")
        if "Provenance" in work.consortium.routes[number - 1].resource_types
    ]
    # its id is the message's: new, unless the message is reprocessed (no read to find out)
    new = work.channel != Channel.REPROCESS
    for item in save_resources(
        work.session,
        [body],
        message_id=work.message_id,
        now=work.moment,
        facility_id=work.facility.id,
        zone=work.zone,
        locked=LockedRows(frozenset({("Provenance", body["id"])}), {}) if new else None,
        # in a bulk batch its row waits for the batch's commit with its index and history
        # rows: nothing in the batch reads a message's Provenance (decision 0050)
        hold_new=new,
    ):
        if item.changed:
            for destination, number in named:
                _queue(work, item, Recipient(destination, f"route {number}"), None)


def _queue(work: Work, item: Saved, recipient: Recipient, person: str | None) -> None:
    work.outbox.append(
        {
            "destination": recipient.destination,
            "resource_type": item.resource_type,
            "resource_id": item.id,
            "resource_key": item.resource_key,
            "version_id": item.version_id,
            "patient_key": item.patient_key,
            "message_id": work.message_id,
            "reason": recipient.reason,
            "person_id": person if recipient.care_facility else None,
            "care_facility": recipient.care_facility,
        }
    )


def enqueue(work: Work) -> None:
    enqueue_many(work.session, work.outbox, now=work.moment)


def record_result(work: Work) -> None:
    """The message's status, issues and resources."""
    set_message_result(
        work.session,
        work.message,
        status=WARNINGS if work.warned else PROCESSED,
        issues=[i.as_dict() for i in work.issues],
        resources=[f"{s.resource_type}/{s.id}" for s in work.saved],
        now=work.moment,
    )
    if log.isEnabledFor(logging.INFO):  # its values are not worked out for nothing (0148)
        log.info(
            "message %s from %s: %d resources (%d changed), %d outbox rows",
            work.message_id,
            work.message.source_system,
            len(work.saved),
            sum(1 for s in work.saved if s.changed),
            len(work.outbox),
        )


def audit_stored(work: Work) -> None:
    """What was stored, as references: each resource version and the patients it is about."""
    audit.record(
        audit.message_event(
            "message.stored",
            "warning" if work.warned else "success",
            message_id=work.message_id,
            source_system=loaded(work.message, "source_system"),
            at=work.moment,
            facility=work.facility.id,
            channel=work.channel,
            address=loaded(work.message, "peer"),
            entities=tuple(f"{s.resource_type}/{s.id}/_history/{s.version_id}" for s in work.saved),
            patients=_patients(work.saved),
            resources=len(work.saved),
            changed=sum(1 for s in work.saved if s.changed),
            outbox_rows=len(work.outbox),
        ),
        session=work.session,
    )


def _who(message: InboundMessage) -> dict[str, Any]:
    """The sender as the message row knows it (channel and peer once receipts record them)."""
    return {
        "facility": loaded(message, "facility_id"),
        "channel": loaded(message, "channel"),
        "address": loaded(message, "peer"),
    }


def audit_received(
    session: Session, message: InboundMessage, moment: datetime, *, duplicate: bool = False
) -> None:
    """Receive: the bytes were kept (or, ``duplicate``, were already kept and are answered
    as before)."""
    audit.record(
        audit.message_event(
            "message.received",
            "success",
            message_id=loaded(message, "id"),
            source_system=loaded(message, "source_system"),
            at=moment,
            **_who(message),
            sha256=loaded(message, "sha256"),
            size=loaded(message, "size"),
            duplicate=1 if duplicate else None,
        ),
        session=session,
    )


def audit_translated(
    session: Session, message: InboundMessage, outcome: Outcome, moment: datetime
) -> None:
    """Translate: with the mapping set (folder and fingerprint of its files) that did it."""
    errors = warnings = 0  # one pass over the issues (0148)
    for issue in outcome.issues:
        if issue.severity == "warning":
            warnings += 1
        elif issue.severity in ("error", "fatal"):
            errors += 1
    audit.record(
        audit.message_event(
            "message.translated",
            "failure" if outcome.failed else ("warning" if warnings else "success"),
            message_id=loaded(message, "id"),
            source_system=loaded(message, "source_system"),
            at=moment,
            **_who(message),
            mapping=outcome.mapping_set,
            format=outcome.format,
            resources=len(outcome.resources),
            errors=errors,
            warnings=warnings,
        ),
        session=session,
    )


def audit_reprocess(session: Session, message: InboundMessage, moment: datetime) -> None:
    """Reprocess: who asked (the request being served) to translate a kept message again."""
    audit.record(
        audit.message_event(
            "message.reprocessed",
            "success",
            message_id=message.id,
            source_system=message.source_system,
            at=moment,
            facility=message.facility_id,
            attempts=message.attempts,
        ),
        session=session,
    )


def _patients(saved: list[Saved]) -> tuple[str, ...]:
    found = [s.patient_key for s in saved if s.patient_key]
    found += [f"Patient/{s.id}" for s in saved if s.resource_type == "Patient"]
    return tuple(dict.fromkeys(found))


STEPS: tuple[Callable[[Work], None], ...] = (
    resolve_identity,
    read_referral_status,  # adapter/referral/status_messages.py: a status the source wrote
    merge_with_stored,
    flag_referral_paths,  # adapter/referral/paths.py: a slip outside the allowed paths
    mark_recognisable_results,  # 互认标识 in meta.tag (adapter/recognition/marks.py)
    save,
    apply_referral_status,  # adapter/referral/status_messages.py: RRI^I12, REF^I14 ...
    advance_referrals,  # adapter/referral/messages.py: arrival, admission, discharge
    note_referral_ledger,  # adapter/referral/ledger_step.py: the 转诊台账, follow-ups
    note_care,
    route,
    trace,
    enqueue,
    record_result,
    audit_stored,
)


def store(work: Work) -> None:
    for step in STEPS:
        step(work)


def quarantine(
    session: Session,
    message: InboundMessage,
    issues: list[Issue],
    moment: datetime,
    *,
    channel: str | None = None,
) -> None:
    """Settle a message that is not stored as resources: quarantined with its located issues,
    kept to be reprocessed."""
    set_message_result(
        session,
        message,
        status=QUARANTINED,
        issues=[i.as_dict() for i in issues],
        resources=[],
        now=moment,
    )
    log.warning(
        "message %s from %s quarantined: %s", message.id, message.source_system, _summary(issues)
    )
    audit.record(
        audit.message_event(
            "message.quarantined",
            "failure",
            message_id=message.id,
            source_system=message.source_system,
            at=moment,
            facility=message.facility_id,
            channel=channel,
            address=message.peer,
            issues=len(issues),
            codes=",".join(sorted({i.code for i in issues}))[:200],
        ),
        session=session,
    )


def _summary(issues: list[Issue]) -> str:
    """Issue locations and codes only: diagnostics may quote patient data."""
    return ", ".join(f"{i.severity}:{i.code}@{i.location or '-'}" for i in issues[:5])
