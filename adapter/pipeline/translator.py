"""Translating a document to FHIR resources, with no database: read it, run its source's
mappings, check the resources. ``adapter mappings test``, the golden tests and the storing
pipeline (adapter/pipeline/ingest.py) all translate through a ``Translator``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from adapter.consortium import Consortium, Facility, SourceSystem
from adapter.errors import AdapterError, InputTooLargeError, Issue, MessageError, UnknownSourceError
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping.loader import MappingSet, cached_mapping_set
from adapter.pipeline.checks import check_resources
from adapter.pipeline.readers import (
    CONTENT_TYPES,
    consortium_variables,
    original_variables,
    read_document,
)
from adapter.settings import ORIGINAL_INLINE_LIMIT

if TYPE_CHECKING:
    from adapter.store.resources import Prepared

log = logging.getLogger(__name__)

# the location of a problem that is about no one place in the input
WHOLE_MESSAGE = "the whole message"


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
    # the message mapping used ("file@version"): remap names the rule behind each change
    mapping: str | None = None
    # the mapping set that translated it, "<folder>@<fingerprint>" (for the audit log)
    mapping_set: str | None = None
    # what the store derives from the resources' content, derived by a translation worker
    # (adapter/store/resources.py ``prepare``); None: the store derives it itself
    prepared: Prepared | None = None

    @classmethod
    def failure(cls, issues: list[Issue], fmt: str | None) -> Outcome:
        return cls(fmt, None, [], issues, True)


class Translator:
    """The consortium's sources and their mappings (loaded once per source, reloadable)."""

    def __init__(
        self,
        consortium: Consortium,
        *,
        mappings_dir: Path,
        max_bytes: int,
        default_timezone: str,
        original_inline_max_bytes: int = 256 * 1024,
        originals_base: str = "",
        limits: InputLimits = DEFAULT_LIMITS,
    ) -> None:
        # what a worker process needs to build the same translator (translation_pool.py)
        self.spec: dict[str, Any] = {
            "consortium": consortium,
            "mappings_dir": mappings_dir,
            "max_bytes": max_bytes,
            "default_timezone": default_timezone,
            "original_inline_max_bytes": original_inline_max_bytes,
            "originals_base": originals_base,
            "limits": limits,
        }
        self.consortium = consortium
        self.limits = limits
        self.mappings_dir = mappings_dir
        self.max_bytes = max_bytes
        # a larger original is linked (originals_base + /messages/{id}/raw), not inlined
        self.original_inline_max_bytes = min(original_inline_max_bytes, ORIGINAL_INLINE_LIMIT)
        self.originals_base = originals_base.rstrip("/")
        self.timezone = ZoneInfo(consortium.timezone or default_timezone)
        self._mapping_sets: dict[str, MappingSet] = {}
        self._consortium_vars = consortium_variables(consortium)

    # -- sources and their mappings ----------------------------------------------------------
    def source(self, source_system: str) -> tuple[Facility, SourceSystem]:
        """The facility and the configured source of ``source_system``, or a clear error."""
        found = self.consortium.source(source_system)
        if found is None:
            known = ", ".join(s.id for f in self.consortium.facilities for s in f.sources)
            raise UnknownSourceError(
                f"unknown source system {source_system!r} (X-Source-System); known: {known}",
                location="X-Source-System",
            )
        return found

    def mapping_set(self, facility: Facility, source: SourceSystem) -> MappingSet:
        cached = self._mapping_sets.get(source.id)
        if cached is None:
            cached = self._load_mapping_set(facility, source)
            self._mapping_sets[source.id] = cached
        return cached

    def reload_source(self, facility: Facility, source: SourceSystem) -> None:
        """Pick up mapping fixes for one source; a mapping that does not load raises and
        leaves the mappings in use as they were."""
        self._mapping_sets[source.id] = self._load_mapping_set(facility, source)

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

    # -- translating -------------------------------------------------------------------------
    def translate(self, raw: bytes, source_system: str) -> Outcome:
        """Translate without storing anything (golden tests, ``adapter mappings test``)."""
        found = self.consortium.source(source_system)
        if found is None:
            raise UnknownSourceError(f"unknown source system {source_system!r}")
        return self.translate_for(raw, *found)

    def original_url(self, message_id: str | None) -> str | None:
        """Where the API serves a stored message's bytes (a kept original too large to carry
        inline links there); None before the message has an id (a dry-run translation)."""
        if message_id is None:
            return None
        return f"{self.originals_base}/messages/{message_id}/raw"

    def translate_for(
        self,
        raw: bytes,
        facility: Facility,
        source: SourceSystem,
        message_id: str | None = None,
    ) -> Outcome:
        """Translate for a source; ``message_id``: the id the message is (or will be) stored
        under, for an original linked instead of inlined."""
        if len(raw) > self.max_bytes:
            error = InputTooLargeError(
                f"the document is {len(raw)} bytes; the limit is {self.max_bytes} "
                "(ADAPTER_MAX_MESSAGE_BYTES)",
                location="body",
            )
            return Outcome.failure(error.issues, source.format)
        mappings: MappingSet | None = None
        try:
            mappings = self.mapping_set(facility, source)
            document = read_document(
                source.format, raw, max_bytes=self.max_bytes, limits=self.limits
            )
            extra = {"consortium": self._consortium_vars}
            # ``@original`` (the whole message hashed and encoded) is worked out only for a
            # message mapping that can read it (decision 0144)
            deferred = {
                "original": partial(
                    original_variables,
                    raw,
                    CONTENT_TYPES.get(source.format, "application/octet-stream"),
                    inline=len(raw) <= self.original_inline_max_bytes,
                    url=self.original_url(message_id),
                )
            }
            translation = document.translate(mappings, facility, self.timezone, extra, deferred)
        except MessageError as exc:
            failure = Outcome.failure(exc.issues, source.format)
            failure.mapping_set = _mapping_name(mappings)
            return failure
        except AdapterError:
            raise
        except Exception as exc:  # a bug must not lose the message: quarantine it, say where
            log.exception("unexpected error translating a message from %s", source.id)
            return Outcome.failure([internal_error("translating", exc)], source.format)
        issues = list(translation.issues)
        issues.extend(check_resources(translation.resources, translation.origins, document.locate))
        failed = False  # a loop, not any() over a generator (decision 0144)
        for issue in issues:
            if issue.severity in ("error", "fatal"):
                failed = True
                break
        return Outcome(
            document.format,
            document.encoding,
            translation.resources,
            issues,
            failed,
            dict(translation.policies),
            origins=dict(translation.origins),
            mapping=translation.mapping,
            mapping_set=_mapping_name(mappings),
        )


def _mapping_name(mappings: MappingSet | None) -> str | None:
    return None if mappings is None else f"{mappings.folder}@{mappings.fingerprint}"


def internal_error(stage: str, exc: Exception) -> Issue:
    # the exception's text is left out: it may quote the message (names, ID numbers)
    return Issue(
        "fatal",
        "exception",
        f"internal error while {stage} ({type(exc).__name__}); the message is kept "
        "and can be reprocessed once fixed",
        location=WHOLE_MESSAGE,
    )
