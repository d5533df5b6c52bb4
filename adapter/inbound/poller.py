"""Running polled sources: read each source's new documents and ingest them in order.

A round stops at the first document that cannot be stored (database down ...): what comes
after it must not be stored before it (the FHIR pull bookmark would pass it by; a file
drop keeps it claimed). The next round starts again from there.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

from adapter.connectors.base import describe_exception
from adapter.inbound.base import Source, SourceDocument
from adapter.pipeline.receipt import Receipt

if TYPE_CHECKING:
    from adapter.pipeline import IngestResult, Pipeline

log = logging.getLogger(__name__)


@dataclass
class PollSummary:
    source: str
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    failed: int = 0
    error: str | None = None  # why the round stopped early

    def __str__(self) -> str:
        text = (
            f"{self.source}: {self.read} read, {self.stored} stored, {self.duplicates} "
            f"already received, {self.quarantined} quarantined"
        )
        return text + (f"; stopped: {self.error}" if self.error else "")


def poll_once(source: Source, pipeline: Pipeline) -> PollSummary:
    summary = PollSummary(source.id)
    limit_reads = getattr(source, "limit_reads", None)
    if limit_reads is not None:  # sources that read files stop at the message size limit
        limit_reads(pipeline.max_bytes, pipeline.keep_bytes)
    try:
        bookmark = source.bookmark(pipeline.factory)
        documents = source.read(bookmark)
    except Exception as exc:
        summary.error = describe_exception(exc)
        log.warning("source %s: cannot read (%s)", source.id, summary.error)
        return summary
    try:
        while True:
            try:
                document = next(documents)
            except StopIteration:
                break
            except Exception as exc:  # the source failed (server down, bad answer ...)
                summary.error = describe_exception(exc)
                log.warning("source %s: reading stopped (%s)", source.id, summary.error)
                break
            summary.read += 1
            receipt = Receipt(
                source.id,
                source.channel,
                peer=document.peer or document.name,
                content_type=document.content_type,
            )
            try:
                if document.oversize is not None:
                    result = pipeline.refuse_oversize(document.oversize, receipt)
                else:
                    result = pipeline.ingest(document.raw, receipt)
            except Exception as exc:  # not stored: keep it for the next round, stop here
                summary.failed += 1
                summary.error = f"not stored: {type(exc).__name__}"
                log.error(
                    "source %s: %s not stored (%s); stopping this round",
                    source.id,
                    document.name,
                    type(exc).__name__,
                )
                if not _store_answers(pipeline):
                    exc = StoreUnavailable(exc)
                _finish(source, document, None, exc, summary)
                break
            if result.duplicate:
                summary.duplicates += 1
            elif result.accepted:
                summary.stored += 1
            else:
                summary.quarantined += 1
            if not _finish(source, document, result, None, summary):
                break
    finally:
        close = getattr(documents, "close", None)
        if close is not None:
            close()
    return summary


class StoreUnavailable(Exception):
    """A document was not stored because the database did not answer: not its fault."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


def _store_answers(pipeline: Pipeline) -> bool:
    try:
        with pipeline.factory() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def _finish(
    source: Source,
    document: SourceDocument,
    result: IngestResult | None,
    error: Exception | None,
    summary: PollSummary,
) -> bool:
    """Tell the source; False (and the round stops) if even that failed."""
    try:
        source.finish(document, result, error)
        return True
    except Exception as exc:  # e.g. a full disk: the document stays claimed, offered again
        summary.error = f"cannot finish {document.name}: {describe_exception(exc)}"
        log.error("source %s: %s", source.id, summary.error)
        return False


def run_forever(
    sources: list[Source], pipeline: Pipeline, stop: threading.Event, *, on_round: object = None
) -> None:
    """Poll each source at its own interval until ``stop`` is set."""
    due = {source.id: 0.0 for source in sources}
    while not stop.is_set():
        now = time.monotonic()
        for source in sources:
            if due[source.id] <= now:
                try:
                    summary = poll_once(source, pipeline)
                except Exception as exc:  # a bug in one source must not stop the others
                    log.error("source %s: round failed (%s)", source.id, type(exc).__name__)
                    summary = PollSummary(source.id, error=type(exc).__name__)
                if summary.read or summary.error:
                    log.info("%s", summary)
                if callable(on_round):
                    on_round(summary)
                due[source.id] = time.monotonic() + source.interval_seconds
        wait = min(due.values()) - time.monotonic() if due else 1.0
        stop.wait(max(0.05, min(wait, 1.0)))
