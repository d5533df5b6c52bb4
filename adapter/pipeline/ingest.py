"""The spine: receive -> keep the raw bytes -> parse -> map -> check -> store -> outbox.

One transaction stores the inbound message, the resources (with history and search index
rows), the outbox rows and the message's status, so the sender's acknowledgement (HTTP 202,
MLLP AA) is only given for what is durably stored. A document that cannot be translated is
stored on its own, quarantined with its located issues, in a transaction of its own: bad
input is never lost and never blocks what comes after it.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from adapter import audit
from adapter.consortium import Consortium, Facility, SourceSystem
from adapter.errors import (
    AdapterError,
    InputTooLargeError,
    Issue,
    MessageError,
    ParseError,
    UnknownSourceError,
)
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping.loader import MappingSet, cached_mapping_set
from adapter.oversize import Oversize, is_prefix_only, oversize_issue
from adapter.pipeline.checks import check_resources
from adapter.pipeline.merge import merge_stored, reads_stored
from adapter.pipeline.readers import (
    CONTENT_TYPES,
    consortium_variables,
    original_variables,
    read_document,
)
from adapter.routing import destinations_for
from adapter.settings import ORIGINAL_INLINE_LIMIT
from adapter.store import (
    create_message,
    enqueue_many,
    find_message,
    get_message,
    lock_resources,
    save_resources,
    set_message_result,
    verified_raw,
)
from adapter.store.models import InboundMessage
from adapter.store.refusals import describe, is_refusal, is_unique_violation, locate_refusal

log = logging.getLogger(__name__)

RECEIVED = "received"
PROCESSED = "processed"
WARNINGS = "processed-with-warnings"
QUARANTINED = "quarantined"
STATUSES = (RECEIVED, PROCESSED, WARNINGS, QUARANTINED)
_RACE_RETRIES = 3
# the location of a problem that is about no one place in the input
WHOLE_MESSAGE = "the whole message"


@dataclass(slots=True)
class IngestResult:
    message_id: str
    status: str
    resources: list[str]
    issues: list[Issue]
    duplicate: bool = False

    @property
    def accepted(self) -> bool:
        return self.status in (PROCESSED, WARNINGS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "status": self.status,
            "duplicate": self.duplicate,
            "resources": self.resources,
            "issues": [i.as_dict() for i in self.issues],
        }


class Pipeline:
    """Translates and stores documents from the consortium's configured source systems."""

    def __init__(
        self,
        consortium: Consortium,
        factory: sessionmaker[Session],
        *,
        mappings_dir: Path,
        max_bytes: int,
        default_timezone: str,
        keep_bytes: int = 65536,
        original_inline_max_bytes: int = 256 * 1024,
        originals_base: str = "",
        limits: InputLimits = DEFAULT_LIMITS,
    ) -> None:
        self.consortium = consortium
        self.limits = limits
        self.factory = factory
        self.mappings_dir = mappings_dir
        self.max_bytes = max_bytes
        # what is kept of a refused oversize document (never more than the limit)
        self.keep_bytes = min(keep_bytes, max_bytes)
        # a larger original is linked (originals_base + /messages/{id}/raw), not inlined
        self.original_inline_max_bytes = min(original_inline_max_bytes, ORIGINAL_INLINE_LIMIT)
        self.originals_base = originals_base.rstrip("/")
        self.timezone = ZoneInfo(consortium.timezone or default_timezone)
        self._mapping_sets: dict[str, MappingSet] = {}
        self._consortium_vars = consortium_variables(consortium)

    # -- mapping sets ------------------------------------------------------------------------
    def mapping_set(self, facility: Facility, source: SourceSystem) -> MappingSet:
        cached = self._mapping_sets.get(source.id)
        if cached is None:
            cached = self._load_mapping_set(facility, source)
            self._mapping_sets[source.id] = cached
        return cached

    def _load_mapping_set(self, facility: Facility, source: SourceSystem) -> MappingSet:
        overlays = tuple(
            folder
            for folder in (f"facilities/{facility.id}",)
            if (self.mappings_dir / folder).is_dir()
        )
        return cached_mapping_set(self.mappings_dir, source.mapping, overlays=overlays)

    def load_all_mappings(self) -> None:
        """Load every source's mappings now, so a broken mapping stops start-up."""
        for facility in self.consortium.facilities:
            for source in facility.sources:
                self.mapping_set(facility, source)

    def loaded_sources(self) -> list[str]:
        return list(self._mapping_sets)

    def reload_mappings(self) -> None:
        self._mapping_sets.clear()
        self.load_all_mappings()

    # -- ingest ------------------------------------------------------------------------------
    def ingest(
        self,
        raw: bytes,
        source_system: str,
        content_type: str | None = None,
        *,
        now: datetime | None = None,
    ) -> IngestResult:
        if len(raw) > self.max_bytes:  # the callers stop reading before; this is the backstop
            oversize = Oversize(raw[: self.keep_bytes], len(raw))
            return self.refuse_oversize(oversize, source_system, content_type, now=now)
        facility, source = self._configured_source(source_system)
        moment = now or datetime.now(UTC)
        digest = hashlib.sha256(raw).hexdigest()
        with self.factory() as session:
            existing = find_message(session, source.id, digest)
            if existing is not None:
                return _result_of(existing, duplicate=True)
        new = _NewMessage(raw, digest, facility, source, content_type, moment, str(uuid.uuid4()))
        for attempt in range(_RACE_RETRIES + 1):
            outcome = self._translate(raw, facility, source, new.message_id)
            try:
                return self._process_new(new, outcome)
            except (IntegrityError, OperationalError) as exc:
                if isinstance(exc, OperationalError) and not _lost_race(exc):
                    raise
                if isinstance(exc, IntegrityError) and not is_unique_violation(exc):
                    return self._keep_refused(new, outcome, exc)
                with self.factory() as session:
                    existing = find_message(session, source.id, digest)
                if existing is not None:
                    # the same bytes arrived twice at once: the other one won the unique key
                    return _result_of(existing, duplicate=True)
                if attempt == _RACE_RETRIES:
                    if isinstance(exc, OperationalError):
                        raise
                    return self._keep_refused(new, outcome, exc)
                # another message created the same new resource in the same instant, or
                # the database broke a deadlock by rolling this transaction back whole
                # (resources are locked in one order, docs/decisions/0009: not expected,
                # but harmless): do it again
                log.info("retrying a message from %s after a concurrent insert", source.id)
        raise AssertionError("unreachable")

    def refuse_oversize(
        self,
        oversize: Oversize,
        source_system: str,
        content_type: str | None = None,
        *,
        now: datetime | None = None,
    ) -> IngestResult:
        """Keep a document over the limit as a quarantined message holding only its first
        bytes and its size (see adapter/oversize.py)."""
        prefix = oversize.prefix[: self.keep_bytes]
        issue = oversize_issue(oversize, self.max_bytes, len(prefix))
        return self.refuse(prefix, source_system, issue, content_type, size=oversize.size, now=now)

    def refuse(
        self,
        raw: bytes,
        source_system: str,
        issue: Issue,
        content_type: str | None = None,
        *,
        size: int | None = None,
        now: datetime | None = None,
    ) -> IngestResult:
        """Keep bytes that must not be translated (a document over the limit, an MLLP frame
        cut off in transit) as a quarantined message with the issue that says why; ``size``
        when ``raw`` holds only the first bytes of what was received."""
        facility, source = self._configured_source(source_system)
        moment = now or datetime.now(UTC)
        digest = hashlib.sha256(raw).hexdigest()  # of the bytes kept, as for every message
        try:
            with self.factory.begin() as session:
                existing = find_message(session, source.id, digest)
                if existing is not None:  # sent again: the same refusal
                    return _result_of(existing, duplicate=True)
                message = create_message(
                    session,
                    source_system=source.id,
                    facility_id=facility.id,
                    raw=raw,
                    content_type=content_type,
                    sha256=digest,
                    detected_format=source.format,
                    encoding=None,
                    received_at=moment,
                )
                if size is not None:
                    message.size = size
                return self._quarantine(session, message, [issue], moment)
        except IntegrityError:
            with self.factory() as session:
                existing = find_message(session, source.id, digest)
            if existing is None:
                raise
            return _result_of(existing, duplicate=True)

    def _configured_source(self, source_system: str) -> tuple[Facility, SourceSystem]:
        found = self.consortium.source(source_system)
        if found is None:
            known = ", ".join(s.id for f in self.consortium.facilities for s in f.sources)
            raise UnknownSourceError(
                f"unknown source system {source_system!r} (X-Source-System); known: {known}",
                location="X-Source-System",
            )
        return found

    def _process_new(self, new: _NewMessage, outcome: Outcome) -> IngestResult:
        try:
            with self.factory.begin() as session:
                message = self._create(session, new, outcome)
                if outcome.failed:
                    return self._quarantine(session, message, outcome.issues, new.moment)
                return self._store(session, message, new.facility, outcome, new.moment)
        except IntegrityError:
            raise  # the unique key race, or a constraint: the caller decides
        except SQLAlchemyError as exc:
            if not is_refusal(exc):
                raise  # the database is unavailable: nothing can be kept, send again
            return self._keep_refused(new, outcome, exc)
        except AdapterError:
            raise
        except Exception as exc:  # a bug while storing must not lose the message either
            log.exception("unexpected error storing a message from %s", new.source.id)
            with self.factory.begin() as session:
                message = self._create(session, new, outcome)
                issue = _internal_error("storing", exc)
                return self._quarantine(session, message, [issue], new.moment)

    def original_url(self, message_id: str | None) -> str | None:
        """Where the API serves a stored message's bytes (a kept original too large to carry
        inline links there); None before the message has an id (a dry-run translation)."""
        if message_id is None:
            return None
        return f"{self.originals_base}/messages/{message_id}/raw"

    def _create(self, session: Session, new: _NewMessage, outcome: Outcome) -> InboundMessage:
        return create_message(
            session,
            message_id=new.message_id,
            source_system=new.source.id,
            facility_id=new.facility.id,
            raw=new.raw,
            content_type=new.content_type,
            sha256=new.digest,
            detected_format=outcome.format,
            encoding=outcome.encoding,
            received_at=new.moment,
        )

    def _keep_refused(
        self, new: _NewMessage, outcome: Outcome, failure: SQLAlchemyError
    ) -> IngestResult:
        """The database refused what the message produced: keep the message, quarantined,
        with the resource and element the database refused."""
        log.warning("message from %s refused by the database: %s", new.source.id, describe(failure))
        with self.factory.begin() as session:
            message = self._create(session, new, outcome)
            return self._quarantine_refused(
                session, message, new.facility, outcome, failure, new.moment
            )

    def _quarantine_refused(
        self,
        session: Session,
        message: InboundMessage,
        facility: Facility,
        outcome: Outcome,
        failure: SQLAlchemyError,
        moment: datetime,
    ) -> IngestResult:
        refusal = locate_refusal(
            session,
            outcome.stored if outcome.stored is not None else outcome.resources,
            failure,
            message_id=message.id,
            now=moment,
            facility_id=facility.id,
            zone=self.timezone,
        )
        issue = Issue(
            "error",
            "processing",
            f"{refusal.text()}; the message is kept and can be reprocessed once fixed",
            location=refusal.resource,
            expression=refusal.expression,
        )
        return self._quarantine(session, message, [issue, *outcome.issues], moment)

    def reprocess(self, message_id: str, *, now: datetime | None = None) -> IngestResult:
        """Translate a stored message again (after a mapping fix) with the current mappings."""
        moment = now or datetime.now(UTC)
        with self.factory() as session:
            message = get_message(session, message_id)
            if message is None:
                from adapter.errors import NotFoundError

                raise NotFoundError(f"no message {message_id}")
            raw, source_id = verified_raw(message), message.source_system
            if is_prefix_only(message.size, raw):
                # only the first bytes of an oversize document were kept: nothing to redo
                return _result_of(message)
        found = self.consortium.source(source_id)
        if found is None:
            raise UnknownSourceError(f"source system {source_id!r} is no longer configured")
        facility, source = found
        # pick up mapping fixes; a mapping that does not load raises here (409 over HTTP) and
        # leaves both the message and the mappings in use for new messages as they were
        self._mapping_sets[source.id] = self._load_mapping_set(facility, source)
        outcome = self._translate(raw, facility, source, message_id)
        try:
            with self.factory.begin() as session:
                message = get_message(session, message_id)
                assert message is not None
                message.detected_format = outcome.format
                message.encoding = outcome.encoding
                if outcome.failed:
                    return self._quarantine(session, message, outcome.issues, moment)
                return self._store(session, message, facility, outcome, moment)
        except SQLAlchemyError as exc:
            if not is_refusal(exc) or is_unique_violation(exc):
                raise
            log.warning("message %s refused by the database: %s", message_id, describe(exc))
            with self.factory.begin() as session:
                message = get_message(session, message_id)
                assert message is not None
                return self._quarantine_refused(session, message, facility, outcome, exc, moment)
        except AdapterError:
            raise
        except Exception as exc:
            log.exception("unexpected error storing message %s again", message_id)
            with self.factory.begin() as session:
                message = get_message(session, message_id)
                assert message is not None
                return self._quarantine(session, message, [_internal_error("storing", exc)], moment)

    def translate(self, raw: bytes, source_system: str) -> Outcome:
        """Translate without storing anything (golden tests, ``adapter mappings test``)."""
        found = self.consortium.source(source_system)
        if found is None:
            raise UnknownSourceError(f"unknown source system {source_system!r}")
        return self._translate(raw, *found)

    # -- the parts ---------------------------------------------------------------------------
    def _translate(
        self,
        raw: bytes,
        facility: Facility,
        source: SourceSystem,
        message_id: str | None = None,
    ) -> Outcome:
        if len(raw) > self.max_bytes:
            error = InputTooLargeError(
                f"the document is {len(raw)} bytes; the limit is {self.max_bytes} "
                "(ADAPTER_MAX_MESSAGE_BYTES)",
                location="body",
            )
            return Outcome.failure(error.issues, source.format)
        try:
            mappings = self.mapping_set(facility, source)
            document = read_document(
                source.format, raw, max_bytes=self.max_bytes, limits=self.limits
            )
            extra = {
                "consortium": self._consortium_vars,
                "original": original_variables(
                    raw,
                    CONTENT_TYPES.get(source.format, "application/octet-stream"),
                    inline=len(raw) <= self.original_inline_max_bytes,
                    url=self.original_url(message_id),
                ),
            }
            translation = document.translate(mappings, facility, self.timezone, extra)
        except MessageError as exc:
            return Outcome.failure(exc.issues, source.format)
        except AdapterError:
            raise
        except Exception as exc:  # a bug must not lose the message: quarantine it, say where
            log.exception("unexpected error translating a message from %s", source.id)
            return Outcome.failure([_internal_error("translating", exc)], source.format)
        issues = list(translation.issues)
        issues.extend(check_resources(translation.resources, translation.origins))
        failed = any(i.severity in ("error", "fatal") for i in issues)
        return Outcome(
            document.format,
            document.encoding,
            translation.resources,
            issues,
            failed,
            dict(translation.policies),
            origins=dict(translation.origins),
        )

    def _quarantine(
        self, session: Session, message: InboundMessage, issues: list[Issue], moment: datetime
    ) -> IngestResult:
        set_message_result(
            session,
            message,
            status=QUARANTINED,
            issues=[i.as_dict() for i in issues],
            resources=[],
            now=moment,
        )
        log.warning(
            "message %s from %s quarantined: %s",
            message.id,
            message.source_system,
            _summary(issues),
        )
        audit.record(
            audit.message_event(
                "message.quarantined",
                "failure",
                message_id=message.id,
                source_system=message.source_system,
                at=moment,
                issues=len(issues),
            ),
            session=session,
        )
        return _result_of(message)

    def _store(
        self,
        session: Session,
        message: InboundMessage,
        facility: Facility,
        outcome: Outcome,
        moment: datetime,
    ) -> IngestResult:
        # lock first, then read, merge and write under that lock: another message about the
        # same patient waits here until this one commits, then merges with what it wrote
        locked = lock_resources(
            session,
            ((r["resourceType"], r["id"]) for r in outcome.resources),
            create_missing=[
                (r["resourceType"], r["id"])
                for r in outcome.resources
                if reads_stored(r, outcome.policies)
            ],
            now=moment,
        )
        resources: list[dict[str, Any]] = []
        issues = list(outcome.issues)
        for resource in outcome.resources:
            merged, conflicts = merge_stored(resource, locked.body, outcome.policies)
            resources.append(merged)
            where = outcome.origins.get((resource["resourceType"], resource["id"]))
            for conflict in conflicts:
                conflict.location = conflict.location or where or WHOLE_MESSAGE
            issues.extend(conflicts)
        outcome.issues = issues
        outcome.stored = resources
        saved = save_resources(
            session,
            resources,
            message_id=message.id,
            now=moment,
            facility_id=facility.id,
            zone=self.timezone,
            locked=locked,
        )
        outbox: list[dict[str, Any]] = []
        for item in saved:
            if not item.changed:
                continue  # identical content: nothing new to deliver
            for destination in destinations_for(self.consortium, facility.id, item.resource_type):
                outbox.append(
                    {
                        "destination": destination,
                        "resource_type": item.resource_type,
                        "resource_id": item.id,
                        "version_id": item.version_id,
                        "patient_key": item.patient_key,
                        "message_id": message.id,
                    }
                )
        enqueue_many(session, outbox, now=moment)
        warned = any(i.severity == "warning" for i in outcome.issues)
        refs = [f"{s.resource_type}/{s.id}" for s in saved]
        set_message_result(
            session,
            message,
            status=WARNINGS if warned else PROCESSED,
            issues=[i.as_dict() for i in outcome.issues],
            resources=refs,
            now=moment,
        )
        log.info(
            "message %s from %s: %d resources (%d changed), %d outbox rows",
            message.id,
            message.source_system,
            len(saved),
            sum(1 for s in saved if s.changed),
            len(outbox),
        )
        audit.record(
            audit.message_event(
                "message.stored",
                "warning" if warned else "success",
                message_id=message.id,
                source_system=message.source_system,
                at=moment,
                resources=len(saved),
                outbox_rows=len(outbox),
            ),
            session=session,
        )
        return _result_of(message)


@dataclass(frozen=True, slots=True)
class _NewMessage:
    """A received document not stored yet, and where it came from."""

    raw: bytes
    digest: str
    facility: Facility
    source: SourceSystem
    content_type: str | None
    moment: datetime
    message_id: str  # chosen before translating: a linked original names it


@dataclass(slots=True)
class Outcome:
    """What translating one document gave: resources, located issues, whether it failed."""

    format: str | None
    encoding: str | None
    resources: list[dict[str, Any]]
    issues: list[Issue]
    failed: bool
    # (type, id) -> on_conflict policy of the template that made it (adapter/pipeline/merge.py)
    policies: dict[Any, dict[str, Any]] = field(default_factory=dict)
    # (type, id) -> where in the input it was made from, for issues found later (merge)
    origins: dict[Any, str | None] = field(default_factory=dict)
    # the resources as merged with the stored ones, once storing began
    stored: list[dict[str, Any]] | None = None

    @classmethod
    def failure(cls, issues: list[Issue], fmt: str | None) -> Outcome:
        return cls(fmt, None, [], issues, True)


def _result_of(message: InboundMessage, *, duplicate: bool = False) -> IngestResult:
    return IngestResult(
        message_id=message.id,
        status=message.status,
        resources=list(message.resources or []),
        issues=[Issue.from_dict(i) for i in message.issues or []],
        duplicate=duplicate,
    )


def _lost_race(exc: OperationalError) -> bool:
    """PostgreSQL rolled the transaction back to break a deadlock (40P01) or a
    serialization conflict (40001): doing it again is the documented remedy."""
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


def _internal_error(stage: str, exc: Exception) -> Issue:
    # the exception's text is left out: it may quote the message (names, ID numbers)
    return Issue(
        "fatal",
        "exception",
        f"internal error while {stage} ({type(exc).__name__}); the message is kept "
        "and can be reprocessed once fixed",
        location=WHOLE_MESSAGE,
    )


def _summary(issues: list[Issue]) -> str:
    """Issue locations and codes only: diagnostics may quote patient data."""
    return ", ".join(f"{i.severity}:{i.code}@{i.location or '-'}" for i in issues[:5])


__all__ = ["STATUSES", "IngestResult", "Outcome", "ParseError", "Pipeline"]
