"""A source format, as the mapping language sees it: one object with a small protocol.

Each format module (``hl7v2``, ``xml``, ``json``, ``csv``) defines a ``SourceFormat``
subclass and its one instance ``FORMAT``; ``adapter/mapping/formats/__init__.py`` lists them
in one table. What a format says:

* ``name``: its folder in a mapping folder (``hl7v2/``, ``xml/`` ...) and the ``format:`` of
  its message mappings; ``media_types``: the consortium's ``SourceSystem.format`` values it
  reads, each with the media type of the original (``cda`` and ``xml`` are both ``xml``);
* ``parse``: bytes to the document its paths are resolved in;
* ``compile_path``, ``compile_match``, ``compile_ignore``: its path syntax, what selects a
  message mapping (``match:``) and what ``ignore:`` names, compiled at load time;
* ``translate``: select the message mapping, run its steps (``adapter.mapping.engine``) over
  the document through the format's ``SourceAdapter``, and list what no rule read.

Adding a format (HL7 v3, say) is one module with a subclass and its ``FORMAT``, and one entry
in the table.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from adapter.errors import Issue
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping.engine import run_steps
from adapter.mapping.evaluation import Evaluation, SourceAdapter
from adapter.mapping.folders import MappingFile
from adapter.mapping.nodes import MappingSet, MessageMapping
from adapter.mapping.translation import (
    ResourceCheck,
    Translation,
    TranslationContext,
    new_state,
    result,
    unread_issue,
)


@dataclass(slots=True)
class Parsed:
    """A document read from bytes, before any mapping is chosen."""

    document: Any  # an HL7 v2 Message, an XML root element, parsed JSON, a CSV table
    encoding: str | None  # the character set actually used
    issues: list[Issue]  # what the reader noticed (an encoding guess): listed first


P = TypeVar("P")


def best_place(value: str, places: Iterable[tuple[P, str]]) -> P | None:
    """Where in the input ``value`` came from, among (place, text) pairs: the text equal to
    it, else one containing it, else the longest text it contains (a value the mapping
    joined or trimmed); None when no text matches. A place is what the caller names it by
    (made into a location only for the one found)."""
    value = value.strip()
    if not value:
        return None
    containing = contained = None
    longest = 0
    for place, text in places:
        text = text.strip()
        if not text:
            continue
        if text == value:
            return place
        if containing is None and value in text:
            containing = place
        elif text in value and len(text) > longest:
            contained, longest = place, len(text)
    return containing or contained


class MatchError(ValueError):
    """A bad ``match:`` entry; ``key`` names it (``xpath``, ``root``, a JSON path ...)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class SourceFormat(ABC):
    name: ClassVar[str]
    media_types: ClassVar[Mapping[str, str]]
    # JSON Schema of what ``match:`` may say in its message mappings (checked at load time)
    match_schema: ClassVar[dict[str, Any]]
    # top-level keys its message mappings may have beyond the common ones
    message_keys: ClassVar[frozenset[str]] = frozenset()
    # ``each: NAME`` iterates named groups of the document (HL7 v2); else each needs a path
    has_groups: ClassVar[bool] = False
    # what carries clinical text or a value, so that leaving it unread is a warning, when a
    # message mapping has no ``clinical:`` of its own (docs/mapping-language.md section 14)
    default_clinical: ClassVar[tuple[str, ...]] = ("*",)

    # -- reading --------------------------------------------------------------------------

    @abstractmethod
    def parse(
        self, raw: bytes, *, max_bytes: int | None = None, limits: InputLimits = DEFAULT_LIMITS
    ) -> Parsed:
        """The document; ParseError / InputTooLargeError (both quarantine) when unreadable."""

    # -- compiling (load time) --------------------------------------------------------------

    def options(self, files: Mapping[str, MappingFile]) -> Any:
        """What compiling this format's files needs from the whole set (XML: the namespace
        prefixes its message mappings declare); ``MappingDefinitionError`` when wrong."""
        return None

    @abstractmethod
    def compile_path(self, text: str, options: Any) -> Any:
        """A path of this format; ``ValueError`` with a readable reason when it is not one."""

    @abstractmethod
    def compile_match(self, match: dict[str, Any], options: Any) -> Any:
        """The matcher of a message mapping (``.matches(document)``, ``.describe()``);
        ``MatchError`` naming the bad entry."""

    def compile_ignore(self, entry: str, options: Any) -> Any:
        """One ``ignore:`` entry as the format's ``unread`` compares it; ``ValueError``."""
        return entry

    def compile_clinical(self, entries: list[str]) -> Any:
        """``clinical:`` as ``unread`` uses it (default: the names, ``*`` for all);
        ``ValueError`` with a readable reason."""
        return frozenset(entries)

    def compile_structure(self, file: MappingFile) -> Any:
        """The message structure a message mapping declares (HL7 v2 groups); ``None``."""
        return None

    def check_steps(self, file: MappingFile, mapping: MessageMapping) -> None:
        """Checks of a compiled message mapping's steps against its structure (HL7 v2: an
        ``each`` names a part of the group it runs in); ``MappingDefinitionError``."""
        return None

    def variable_hint(self, name: str) -> str:
        """Added to the error about an unknown ``@name`` (XML: how to write an attribute)."""
        return ""

    # -- translating ------------------------------------------------------------------------

    def locate_value(self, document: Any, value: str) -> str | None:
        """Where ``value`` (a produced value the pipeline refuses) stands in ``document``, as
        this format's issues locate things; None when it cannot be found."""
        return None

    def translate(
        self,
        mappings: MappingSet,
        document: Any,
        context: TranslationContext,
        check: ResourceCheck | None = None,
    ) -> Translation:
        """Translate ``document`` with the message mapping its ``match:`` selects. ``check``
        is for formats that import item by item (CSV rows); others are checked whole by the
        pipeline."""
        mapping = self.select(mappings, document)
        if isinstance(mapping, Issue):
            return Translation([], [mapping])
        source, scope, problems = self.start(document, mapping)
        state = new_state(mappings, self.name, source, context)
        state.issues.extend(problems)
        fatal = False  # loops, not generators (each step resumed from C; decision 0149)
        for p in problems:
            if p.severity in ("error", "fatal"):
                fatal = True
                break
        if not fatal:
            variables = context.variables_for(mappings.formats[self.name], mapping)
            run_steps(Evaluation(state, scope, variables), mapping.steps)
        unread = self.unread(document, source, mapping)
        self.release(source, scope)
        for item in unread:
            state.issues.append(unread_issue(*item))
        return result(
            list(state.resources.values()),
            state.issues,
            mapping,
            unread,
            state.policies,
            state.produced_from,
        )

    def select(self, mappings: MappingSet, document: Any) -> MessageMapping | Issue:
        """The one message mapping whose ``match:`` holds, or the issue saying why there is
        none (none matches, or several do)."""
        what, where = self.describe(document)
        bucket = mappings.formats.get(self.name)
        candidates = sorted(bucket.messages.items()) if bucket is not None else []
        found = [m for _, m in candidates if m.match is not None and m.match.matches(document)]
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(f"{m.name} ({m.match.describe()})" for m in found)
            return Issue(
                "error",
                "multiple-matches",
                f"{what} matches several {self.name} message mappings: {names}; their match: "
                "must exclude each other",
                location=where,
            )
        tried = sorted(f"{m.name} ({m.match.describe()})" for _, m in candidates)
        return Issue(
            "error",
            "not-supported",
            f"{what} matches no {self.name} message mapping of this source "
            f"(tried: {'; '.join(tried) or 'none'})",
            location=where,
        )

    def describe(self, document: Any) -> tuple[str, str]:
        """How issues about the whole document name it: (what, location)."""
        return "the document", "document"

    @abstractmethod
    def start(
        self, document: Any, mapping: MessageMapping
    ) -> tuple[SourceAdapter, Any, list[Issue]]:
        """The engine's view of the document for this mapping, the scope the steps start in,
        and problems found before it runs: errors stop it (a required group missing),
        information notes do not (HL7 v2: an ORC read after its OBR)."""

    def release(self, source: SourceAdapter, scope: Any) -> None:
        """After the translation (the unread report made): undo the reference cycles of
        the engine's view of the document, so that it is freed when the translation
        returns rather than by the cyclic garbage collector (decision 0100). Nothing reads
        ``source`` or ``scope`` afterwards. By default nothing to undo."""
        return None

    @abstractmethod
    def unread(
        self, document: Any, source: SourceAdapter, mapping: MessageMapping
    ) -> list[tuple[str, str, bool]]:
        """(location, what, clinical) of content present that no rule read, unless
        ``ignore:`` names it; ``clinical`` when it carries clinical text or a value (what the
        mapping's ``clinical:`` names): its loss is a warning, not an information."""
