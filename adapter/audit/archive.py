"""Archive, check and purge old audit records (docs/audit.md, "Retention").

``archive`` writes the oldest records (those older than the retention, from the first
record still in the table) to ``audit-<first>-<last>.ndjson.gz`` (one record with its
links per line) and ``audit-<first>-<last>.json``: a manifest with the seq range, the hash
before the first and of the last record, the file's sha256 and count, signed with the
audit key (Ed25519). ``check_archives`` walks every archive in a folder through the same
checks as the table (adapter/audit/verify.py), checks the manifests' signatures and file
hashes, and that the archives chain to each other and to the table. ``purge`` removes from
the table only records that an archive holds and that archive verified; it needs the
audit administrator's database role on PostgreSQL (the service's role cannot DELETE).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from adapter.audit.chain import GENESIS, canonical
from adapter.audit.signing import check, sign_text
from adapter.audit.verify import Finding, Report, walk
from adapter.errors import AdapterError
from adapter.fhir.dates import format_instant
from adapter.store.audit_log import AuditLink, AuditRecord, stored_links

_COLUMNS = (
    "seq",
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
    "body",
    "prev_hash",
    "hash",
)


ARCHIVE_LOG = "adapter-audit-archive"


class ArchiveError(AdapterError):
    http_status = 409
    issue_code = "conflict"


@dataclass(frozen=True, slots=True)
class Archive:
    data: Path
    manifest: Path
    first: int
    last: int
    prev_hash: str
    last_hash: str


def _line(record: AuditRecord, links: set[tuple[str, str]]) -> bytes:
    row: dict[str, Any] = {name: getattr(record, name) for name in _COLUMNS}
    row["recorded"] = format_instant(record.recorded)
    row["links"] = sorted(links)
    return orjson.dumps(row) + b"\n"


def archive(
    session: Session,
    folder: Path,
    key: Ed25519PrivateKey,
    *,
    older_than: datetime,
    now: datetime,
    limit: int = 1_000_000,
) -> Archive | None:
    """Write the records recorded before ``older_than`` (from the first in the table, in
    seq order, stopping at the first younger one) to one archive; None if there are none."""
    rows = (
        session.execute(
            select(AuditRecord)
            .where(AuditRecord.recorded < older_than)
            .order_by(AuditRecord.seq)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    first_in_table = session.execute(select(AuditRecord.seq).order_by(AuditRecord.seq).limit(1))
    start = first_in_table.scalar()
    # contiguous from the table's first record: an old record behind a young one waits
    kept = []
    for expected, record in enumerate(rows, start=start or 0):
        if record.seq != expected:
            break
        kept.append(record)
    if not kept:
        return None
    links = stored_links(session, kept)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"audit-{kept[0].seq:012d}-{kept[-1].seq:012d}"
    data = folder / f"{stem}.ndjson.gz"
    with gzip.open(data, "wb") as out:
        for record in kept:
            out.write(_line(record, links.get(record.seq, set())))
    manifest = {
        "log": ARCHIVE_LOG,
        "first": kept[0].seq,
        "last": kept[-1].seq,
        "count": len(kept),
        "prev_hash": kept[0].prev_hash,
        "last_hash": kept[-1].hash,
        "file": data.name,
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "made_at": format_instant(now),
    }
    statement = canonical(manifest)
    signature, key_id = sign_text(key, statement)
    manifest_path = folder / f"{stem}.json"
    manifest_path.write_bytes(
        orjson.dumps(
            {"statement": statement, "signature": signature, "key_id": key_id},
            option=orjson.OPT_INDENT_2,
        )
    )
    return Archive(data, manifest_path, kept[0].seq, kept[-1].seq, kept[0].prev_hash, kept[-1].hash)


def _records(data: Path) -> Iterator[tuple[dict[str, Any], set[tuple[str, str]]]]:
    with gzip.open(data, "rb") as lines:
        for line in lines:
            row = orjson.loads(line)
            row["recorded"] = datetime.fromisoformat(row["recorded"])
            yield row, {(k, r) for k, r in row.pop("links")}


def check_archives(folder: Path, public: Ed25519PublicKey | None, report: Report) -> list[Archive]:
    """Check every archive of ``folder`` in seq order; findings go to ``report``. Returns
    the archives that verified (all of them when ``report.ok``)."""
    good: list[Archive] = []
    expected_prev = GENESIS
    for path in sorted(folder.glob("audit-*.json")):
        signed = orjson.loads(path.read_bytes())
        fields = (
            check(signed["statement"], signed["signature"], public, log=ARCHIVE_LOG)
            if public
            else None
        )
        manifest = orjson.loads(signed["statement"])
        first = int(manifest["first"])
        if fields is None:
            why = "no public key to check it" if public is None else "its signature does not hold"
            report.findings.append(Finding("signature", first, f"archive {path.name}: {why}"))
            return good
        data = path.with_name(manifest["file"])
        if not data.exists() or hashlib.sha256(data.read_bytes()).hexdigest() != manifest["sha256"]:
            report.findings.append(
                Finding("changed", first, f"archive {data.name} is missing or not as signed")
            )
            return good
        if good and first != good[-1].last + 1:
            report.findings.append(
                Finding(
                    "removed",
                    good[-1].last + 1,
                    f"no archive holds {good[-1].last + 1}..{first - 1}",
                )
            )
            return good
        if good or first != 1:
            expected_prev = good[-1].last_hash if good else manifest["prev_hash"]
        before = len(report.findings)
        walk(_records(data), report, [], start=(first - 1, expected_prev))
        if len(report.findings) > before:
            return good
        if report.last_seq != manifest["last"] or report.head != manifest["last_hash"]:
            report.findings.append(
                Finding("changed", first, f"archive {data.name} does not end as its manifest says")
            )
            return good
        good.append(
            Archive(
                data, path, first, manifest["last"], manifest["prev_hash"], manifest["last_hash"]
            )
        )
    return good


def purge(session: Session, archives: list[Archive], *, retention_days: int, now: datetime) -> int:
    """Remove from the table the records the (verified) ``archives`` hold that are older
    than the retention; returns how many."""
    if not archives:
        raise ArchiveError("no verified archive: nothing may be purged")
    cutoff = now - timedelta(days=retention_days)
    last = archives[-1].last
    stored = session.execute(select(AuditRecord.hash).where(AuditRecord.seq == last)).scalar()
    if stored is not None and stored != archives[-1].last_hash:
        raise ArchiveError(f"record {last} in the table differs from the archive: not purged")
    young = session.execute(
        select(AuditRecord.seq)
        .where(AuditRecord.seq <= last, AuditRecord.recorded >= cutoff)
        .limit(1)
    ).scalar()
    if young is not None:
        last = young - 1  # keep everything from the first record still within retention
    if session.get_bind().dialect.name != "postgresql":  # there the links are on the rows
        session.execute(delete(AuditLink).where(AuditLink.seq <= last))
    result = session.execute(delete(AuditRecord).where(AuditRecord.seq <= last))
    return int(result.rowcount or 0)
