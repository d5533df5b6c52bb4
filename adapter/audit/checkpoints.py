"""Making, listing and exporting the signed checkpoints of the audit log."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.audit.signing import Checkpoint, sign
from adapter.audit.writer import LOCK_KEY
from adapter.store import advisory
from adapter.store.audit_log import AuditCheckpoint, AuditRecord

log = logging.getLogger(__name__)


def make_checkpoint(
    session: Session, key: Ed25519PrivateKey, *, now: datetime
) -> Checkpoint | None:
    """Sign the log's current head (under the chain lock, so the head is a committed one);
    None if the log is empty or the head is already signed."""
    if session.get_bind().dialect.name == "postgresql":
        advisory.lock(session, LOCK_KEY)
    head = session.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    if head is None or session.get(AuditCheckpoint, head[0]) is not None:
        return None
    checkpoint = sign(key, seq=head[0], head=head[1], made_at=now)
    session.add(
        AuditCheckpoint(
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            made_at=checkpoint.made_at,
            key_id=checkpoint.key_id,
            statement=checkpoint.statement,
            signature=checkpoint.signature,
        )
    )
    return checkpoint


def stored_checkpoints(session: Session) -> list[tuple[str, str]]:
    """(statement, signature) of every checkpoint in the table, oldest first."""
    rows = session.execute(
        select(AuditCheckpoint.statement, AuditCheckpoint.signature).order_by(AuditCheckpoint.seq)
    )
    return [(statement, signature) for statement, signature in rows]


def read_exported(lines: Iterable[str]) -> list[tuple[str, str]]:
    """Checkpoints from an export (one JSON object per line: statement, signature)."""
    import orjson

    found = []
    for line in lines:
        if line.strip():
            item = orjson.loads(line)
            found.append((item["statement"], item["signature"]))
    return found


class Checkpointer:
    """Signs a checkpoint every ``minutes`` in a background thread (``adapter serve`` with
    ``ADAPTER_AUDIT_SIGNING_KEY`` set). A failure is logged and tried again next time."""

    def __init__(self, factory: Any, key: Ed25519PrivateKey, minutes: float) -> None:
        self.factory, self.key, self.seconds = factory, key, minutes * 60
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-checkpoints", daemon=True)

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                with self.factory.begin() as session:
                    made = make_checkpoint(session, self.key, now=datetime.now(UTC))
                if made is not None:
                    log.info("audit checkpoint: %d records, head %s", made.seq, made.hash)
            except Exception:  # the database may be down for a while: try again next time
                log.exception("audit checkpoint failed")


def start_checkpoints(settings: Any, factory: Any) -> Checkpointer | None:
    """The periodic checkpoints of ``adapter serve``, when a signing key is configured
    (a key that cannot be read stops start-up: ConfigError)."""
    from adapter.audit.signing import load_private

    if settings.audit_signing_key is None:
        return None
    key = load_private(settings.audit_signing_key)
    return Checkpointer(factory, key, settings.audit_checkpoint_minutes).start()
