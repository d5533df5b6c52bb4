"""File drop, inbound: a folder as a source (each file is one document; a file of several
HL7 v2 messages is one document per message, adapter/hl7v2/split.py).

A file is claimed by renaming it into ``processing/`` (atomic on one file system, so no
second poller and no crash can make it be read twice or lost), ingested, then moved to
``done/`` or, when it was quarantined, to ``error/`` with ``<name>.error.json`` beside it.
A file left in ``processing/`` by a process that died is ingested again on the next poll:
if it had been stored, the pipeline knows its bytes (sha256) and answers with the stored
message instead of storing it twice. A lock file keeps a second poller off the folder.

A file of several messages goes to ``done/`` once every message was stored, to ``error/``
(its report listing each message's outcome) when any was quarantined; the others are stored
all the same.

The destination side (writing files) is :mod:`adapter.outbound.file_drop`.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import Field

from adapter.connectors.base import CheckResult, ConnectorSettings, parse_settings, timed_check
from adapter.connectors.files import write_atomically
from adapter.consortium import Facility, SourceSystem
from adapter.errors import ConfigError
from adapter.hl7v2.split import split_messages
from adapter.inbound.base import SourceDocument, register_source
from adapter.inbound.file_poison import AttemptLedger, fitting_name, name_bytes, printable_name
from adapter.inbound.poller import StoreUnavailable
from adapter.oversize import Oversize

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from adapter.pipeline import IngestResult

log = logging.getLogger(__name__)


# -- source -----------------------------------------------------------------------------------
class FileSourceSettings(ConnectorSettings):
    kind: Literal["file"]
    path: str = Field(description="the folder senders drop files into")
    pattern: str = Field("*", description="only names matching this (e.g. *.hl7)")
    interval_seconds: float = Field(5.0, gt=0)
    min_age_seconds: float = Field(
        2.0,
        ge=0,
        description="leave files younger than this (they may still be written); "
        "senders that write a temporary name and rename need 0",
    )
    content_type: str | None = None
    keep_done: bool = Field(True, description="false: delete a file once it is stored")
    create_directories: bool = True
    max_attempts: int = Field(
        3,
        ge=1,
        description="a file that could not be stored this many times (while the database "
        "answered) is moved to error/ with the last error",
    )


ERROR_SUFFIX = ".error.json"
_OWN_FOLDERS = frozenset({"processing", "done", "error"})


class NotARegularFile(OSError):
    pass


class FileSource:
    kind = "file"
    channel = "file-drop"

    def __init__(self, source_id: str, settings: FileSourceSettings) -> None:
        self.id = source_id
        self.settings = settings
        self.interval_seconds = settings.interval_seconds
        self.inbox = Path(settings.path)
        self.processing = self.inbox / "processing"
        self.done = self.inbox / "done"
        self.error = self.inbox / "error"
        self._lock: IO[str] | None = None
        self._attempts = AttemptLedger(self.processing / ".attempts.json")
        # ADAPTER_MAX_MESSAGE_BYTES and ADAPTER_OVERSIZE_KEEP_BYTES, set by the poller
        self.max_bytes = 5 * 1024 * 1024
        self.keep_bytes = 65536

    # -- contract ---------------------------------------------------------------------------
    def check(self) -> CheckResult:
        def probe() -> str | None:
            if not self.inbox.is_dir():
                return f"no folder {self.inbox}"
            if not os.access(self.inbox, os.R_OK | os.W_OK | os.X_OK):
                return f"{self.inbox} is not readable and writable"
            return None

        return timed_check(self.id, "file-source", probe)

    def bookmark(self, factory: sessionmaker[Session] | None) -> str | None:
        return None  # the folders are the state

    def read(self, bookmark: str | None) -> Iterator[SourceDocument]:
        if not self._take_lock():
            return
        # files left claimed (the process died, or they could not be stored) come first,
        # in the order they came
        for path in sorted(self._entries(self.processing), key=_age_key):
            yield from self._offer(path)
        now = time.time()
        for path in sorted(self._entries(self.inbox), key=_age_key):
            if path.name in _OWN_FOLDERS or not fnmatch.fnmatch(path.name, self.settings.pattern):
                continue
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if now - info.st_mtime < self.settings.min_age_seconds or stat.S_ISDIR(info.st_mode):
                continue  # young, or a sub-folder (left alone)
            if not stat.S_ISREG(info.st_mode):
                self._set_aside(path, f"not a regular file ({_kind(info.st_mode)})")
                continue
            try:
                claimed = self._claim(path)
            except OSError as exc:
                self._set_aside(path, f"cannot be claimed: {_describe(exc)}")
                continue
            if claimed is not None:
                yield from self._offer(claimed)

    def finish(
        self, document: SourceDocument, result: IngestResult | None, error: Exception | None = None
    ) -> None:
        part: _Part | None = document.ref if isinstance(document.ref, _Part) else None
        path: Path = part.path if part is not None else document.ref
        if result is None:
            # not stored: it stays claimed and is offered again next time; a file that fails
            # while the database answers is set aside after max_attempts
            counts = not isinstance(error, StoreUnavailable)
            reason = _describe(error) if error is not None else "no result"
            self._attempts.failed(path.name, reason, counts=counts)
            log.warning(
                "file source %s: %s not stored (%s); will retry",
                self.id,
                printable_name(path.name),
                reason,
            )
            return
        if part is not None:
            part.outcomes.append(result)
            if len(part.outcomes) < part.total:
                return  # the file moves once its last message is stored
            self._finish_parts(path, part.outcomes)
            return
        self._attempts.forget(path.name)
        if result.accepted:
            self._done(path)
            return
        self._to_error(
            path,
            {
                "message_id": result.message_id,
                "status": result.status,
                "issues": [i.as_dict() for i in result.issues],
            },
        )

    def _done(self, path: Path) -> None:
        """Every message of the file is stored: into done/, or away."""
        if self.settings.keep_done:
            _move(path, self.done)
        else:
            path.unlink(missing_ok=True)

    def _finish_parts(self, path: Path, results: list[IngestResult]) -> None:
        self._attempts.forget(path.name)
        if all(r.accepted for r in results):
            self._done(path)
            return
        self._to_error(
            path,
            {
                "status": "some messages quarantined",
                "messages": [
                    {
                        "message": n,
                        "message_id": r.message_id,
                        "status": r.status,
                        "issues": [i.as_dict() for i in r.issues],
                    }
                    for n, r in enumerate(results, start=1)
                ],
            },
        )

    def limit_reads(self, max_bytes: int, keep_bytes: int) -> None:
        self.max_bytes, self.keep_bytes = max_bytes, min(keep_bytes, max_bytes)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    # -- parts ------------------------------------------------------------------------------
    def _take_lock(self) -> bool:
        if self._lock is not None:
            return True
        if self.settings.create_directories:
            for folder in (self.inbox, self.processing, self.done, self.error):
                folder.mkdir(parents=True, exist_ok=True)
        elif not self.inbox.is_dir():
            raise FileNotFoundError(f"no folder {self.inbox}")
        else:
            for folder in (self.processing, self.done, self.error):
                folder.mkdir(exist_ok=True)
        handle = open(self.processing / ".lock", "w")  # noqa: SIM115 (held until close())
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            log.warning(
                "file source %s: another poller holds %s; skipped",
                self.id,
                self.processing / ".lock",
            )
            return False
        self._lock = handle
        return True

    def _entries(self, folder: Path) -> list[Path]:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return []
        return [Path(e.path) for e in entries if not e.name.startswith(".")]

    def _claim(self, path: Path) -> Path | None:
        target = _free_name(self.processing, path.name, room=0)
        try:
            os.rename(path, target)
        except FileNotFoundError:  # taken meanwhile
            return None
        return target

    def _offer(self, path: Path) -> list[SourceDocument]:
        """Read a claimed file for the pipeline, counting the attempt first: one document, or
        one per message for a file of several HL7 v2 messages; a file tried too often, or
        that cannot be read, is set aside instead (no document)."""
        tried = self._attempts.get(path.name)
        if tried["count"] >= self.settings.max_attempts:
            self._set_aside(
                path,
                f"could not be stored in {tried['count']} attempts "
                f"(last error: {tried['last_error'] or 'the process stopped while storing it'})",
            )
            return []
        self._attempts.begin(path.name)
        try:
            document = self._document(path)
        except OSError as exc:
            self._set_aside(path, f"cannot be read: {_describe(exc)}")
            return []
        if document.oversize is not None:
            return [document]  # not read whole: kept as it is, not split
        parts = split_messages(document.raw, document.content_type)
        if len(parts) == 1:  # one message (a batch of one: without its wrapper)
            document.raw = parts[0].raw
            return [document]
        shared = _Part(path, len(parts), [])
        return [
            SourceDocument(
                raw=p.raw,
                content_type=document.content_type,
                name=p.label(document.name),
                ref=shared,
            )
            for p in parts
        ]

    def _set_aside(self, path: Path, reason: str) -> None:
        """Move a file that cannot go through the pipeline to error/ with the reason."""
        log.warning(
            "file source %s: %s moved to %s: %s",
            self.id,
            printable_name(path.name),
            self.error,
            reason,
        )
        try:
            self._to_error(path, {"status": "not stored", "reason": reason})
        except OSError as exc:  # it stays where it is; the next round tries again
            log.error(
                "file source %s: cannot move %s aside (%s)",
                self.id,
                printable_name(path.name),
                _describe(exc),
            )
        self._attempts.forget(path.name)

    def _to_error(self, path: Path, report: dict[str, Any]) -> None:
        report = {"file": printable_name(path.name), **report}
        if printable_name(path.name) != path.name:
            report["file_name_bytes_hex"] = name_bytes(path.name).hex()
        target = _free_name(self.error, path.name, room=len(ERROR_SUFFIX))
        if target.name != path.name:
            report["moved_as"] = printable_name(target.name)
        # the report first: a crash between the two leaves the file claimed, to be redone
        write_atomically(
            self.error,
            target.name + ERROR_SUFFIX,
            json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8"),
        )
        os.replace(path, target)

    def _document(self, path: Path) -> SourceDocument:
        """Read a claimed file; one over the size limit only as far as its first bytes."""
        oversize = None
        # O_NONBLOCK: something that is not a regular file (a FIFO) must not hang the poller
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise NotARegularFile(f"{path.name} is not a regular file")
            if info.st_size > self.max_bytes:
                raw = handle.read(self.keep_bytes)
                oversize = Oversize(raw, info.st_size)
            else:
                raw = handle.read(self.max_bytes + 1)
                if len(raw) > self.max_bytes:  # it grew after it was listed
                    raw = raw[: self.keep_bytes]
                    oversize = Oversize(raw, self.max_bytes + 1, size_exact=False)
        return SourceDocument(
            raw=raw,
            content_type=self.settings.content_type,
            name=printable_name(path.name),
            ref=path,
            oversize=oversize,
        )


@dataclass
class _Part:
    """What the messages of one file share: the claimed file, how many there are and the
    results so far (the poller finishes them one by one, in order)."""

    path: Path
    total: int
    outcomes: list[IngestResult]


def _age_key(path: Path) -> tuple[float, str]:
    try:
        return (path.stat().st_mtime, path.name)
    except FileNotFoundError:
        return (0.0, path.name)


def _free_name(folder: Path, name: str, *, room: int = 0) -> Path:
    """``folder/name``, or ``folder/name.1`` ... when that is taken (never overwrite); a
    name too long to take the suffix and ``room`` more bytes is shortened."""
    target = folder / fitting_name(name, room)
    number = 0
    # lexists: False (not an error) for a name the file system cannot hold
    while os.path.lexists(target) or os.path.lexists(folder / (target.name + ERROR_SUFFIX)):
        number += 1
        suffix = f".{number}"
        target = folder / (fitting_name(name, room + len(suffix)) + suffix)
    return target


def _move(path: Path, folder: Path) -> Path:
    target = _free_name(folder, path.name)
    os.replace(path, target)
    return target


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return name
    return "not a file"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StoreUnavailable):
        return f"the database did not answer ({type(exc.cause).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__  # not its text: it may quote the document


@register_source("file")
def build_source(facility: Facility, source: SourceSystem) -> FileSource:
    settings = parse_settings(
        FileSourceSettings, source.connector, where=f"sources.{source.id}.connector"
    )
    if Path(settings.path).resolve() == Path("/").resolve():
        raise ConfigError("a file source may not poll /", key=f"sources.{source.id}.connector.path")
    return FileSource(source.id, settings)
