"""``adapter audit verify``: walk the audit log and name the first record that was changed,
inserted or removed (docs/audit.md, "Verify").

The walk checks, record by record in ``seq`` order:

* ``seq`` has no gap (a gap: those records were removed);
* ``hash`` is ``sha256(prev_hash + body)`` (else the record was changed);
* the indexed columns and the stored links (audit_link rows on SQLite, ``links`` on
  PostgreSQL) agree with ``body`` (else changed);
* ``prev_hash`` is the hash of the record before (else a record was inserted, or one was
  removed and the rest renumbered); a record whose successor chains to its predecessor
  was inserted;
* at every signed checkpoint's ``seq``, the head hash is the signed one (else the log up to
  there was rewritten), and no checkpoint names more records than the log holds (else the
  tail was removed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.audit.chain import GENESIS, chain_hash, links_of
from adapter.audit.signing import check
from adapter.audit.writer import row_of
from adapter.store.audit_log import AuditCheckpoint, AuditRecord, stored_links

_BATCH = 2000
_COLUMNS = (
    "recorded",
    "action",
    "outcome",
    "actor",
    "client",
    "facility",
    "address",
    "channel",
    "correlation_id",
    "request_id",
    "message_id",
)


@dataclass(slots=True)
class Finding:
    kind: str  # changed | inserted | removed | signature
    seq: int
    text: str

    def __str__(self) -> str:
        return f"record {self.seq} {self.kind}: {self.text}"


@dataclass(slots=True)
class Report:
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head: str = GENESIS
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True, slots=True)
class SignedHead:
    seq: int
    hash: str
    made_at: str


def signed_heads(
    statements: Iterable[tuple[str, str]], public: Ed25519PublicKey | None, report: Report
) -> list[SignedHead]:
    """The checkpoints whose signature holds; a bad signature is a finding."""
    heads = []
    for statement, signature in statements:
        fields = check(statement, signature, public) if public is not None else None
        if fields is None:
            if public is not None:
                seq = int(orjson.loads(statement).get("seq", 0))
                report.findings.append(
                    Finding("signature", seq, "a checkpoint's signature does not hold")
                )
            continue
        heads.append(SignedHead(int(fields["seq"]), fields["hash"], fields["made_at"]))
    return sorted(heads, key=lambda h: h.seq)


def verify(
    session: Session,
    *,
    public: Ed25519PublicKey | None = None,
    external: Iterable[tuple[str, str]] = (),
    start: tuple[int, str] | None = None,
) -> Report:
    """Walk the whole table. ``start``: (seq, hash) of the last archived record when the
    records before were archived and purged (adapter/audit/archive.py); ``external``:
    checkpoints kept elsewhere, checked like the table's own."""
    report = Report()
    own = session.execute(select(AuditCheckpoint.statement, AuditCheckpoint.signature)).all()
    heads = signed_heads([*own, *external], public, report)
    report.checkpoints = len(heads)
    walk(_records(session), report, heads, start=start)
    return report


def walk(
    rows: Iterator[tuple[Any, set[tuple[str, str]]]],
    report: Report,
    heads: list[SignedHead],
    *,
    start: tuple[int, str] | None = None,
) -> None:
    """Check a sequence of (record, its link rows); records as rows of audit_record or as
    archived dicts (the same keys)."""
    expected_seq, prev = (start[0] + 1, start[1]) if start else (None, GENESIS)
    before_prev: str | None = None  # hash of the record two back
    pending_heads = [h for h in heads if start is None or h.seq > start[0]]
    for record, links in rows:
        seq = _get(record, "seq")
        if expected_seq is None:
            expected_seq = seq
            if seq != 1:  # earlier records archived, and no archive given to start from
                prev = _get(record, "prev_hash")
        report.first_seq = report.first_seq or seq
        finding = _check_one(record, links, seq, expected_seq, prev, before_prev)
        if finding is not None:
            report.findings.append(finding)
            return
        before_prev, prev = prev, _get(record, "hash")
        expected_seq = seq + 1
        report.records += 1
        report.last_seq, report.head = seq, prev
        while pending_heads and pending_heads[0].seq <= seq:
            head = pending_heads.pop(0)
            if head.seq == seq and head.hash != prev:
                report.findings.append(
                    Finding(
                        "changed",
                        seq,
                        f"the log up to here is not the one the checkpoint of {head.made_at} "
                        "signed: records at or before it were rewritten",
                    )
                )
                return
    if pending_heads:
        head = pending_heads[0]
        last = report.last_seq or 0
        report.findings.append(
            Finding(
                "removed",
                last + 1,
                f"the checkpoint of {head.made_at} signed {head.seq} records; "
                f"the log ends at {last}: records {last + 1}..{head.seq} were removed",
            )
        )


def _check_one(
    record: Any,
    links: set[tuple[str, str]],
    seq: int,
    expected_seq: int,
    prev: str,
    before_prev: str | None,
) -> Finding | None:
    if seq > expected_seq:
        span = str(expected_seq) if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
        return Finding("removed", expected_seq, f"records {span} are missing (next is {seq})")
    body_text = _get(record, "body")
    if chain_hash(_get(record, "prev_hash"), body_text) != _get(record, "hash"):
        return Finding("changed", seq, "its content no longer matches its hash")
    try:
        body = orjson.loads(body_text)
        expected = row_of(seq, body, body_text, "", "")
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        return Finding("changed", seq, "its content is not a record")
    for column in _COLUMNS:
        if _normal(_get(record, column)) != _normal(expected[column]):
            return Finding("changed", seq, f"column {column} differs from the record's content")
    if links != links_of(body):
        return Finding("changed", seq, "its patient / resource links differ from its content")
    if _get(record, "prev_hash") != prev:
        if before_prev is not None and _get(record, "prev_hash") == before_prev:
            return Finding(
                "inserted",
                seq - 1,
                f"record {seq} chains to record {seq - 2}: record {seq - 1} was inserted",
            )
        return Finding(
            "changed",
            seq,
            f"it does not chain to record {seq - 1}: a record was inserted here, or "
            f"record {seq - 1} was changed and re-hashed, or records before it were removed "
            "and the rest renumbered",
        )
    return None


def _get(record: Any, name: str) -> Any:
    return record[name] if isinstance(record, dict) else getattr(record, name)


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _records(session: Session) -> Iterator[tuple[AuditRecord, set[tuple[str, str]]]]:
    after = -1
    while True:
        batch = (
            session.execute(
                select(AuditRecord)
                .where(AuditRecord.seq > after)
                .order_by(AuditRecord.seq)
                .limit(_BATCH)
            )
            .scalars()
            .all()
        )
        if not batch:
            return
        links = stored_links(session, batch)
        for record in batch:
            yield record, links.get(record.seq, set())
        after = batch[-1].seq
        session.expunge_all()
