"""JSON as a source format: UTF-8 or GB18030 bytes with numbers kept as written, paths
``$.items[0].code`` / ``.code``, ``match:`` on values and presence, unread values listed with
their path (``adapter.mapping.json_paths``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from adapter.errors import Issue
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping import json_paths
from adapter.mapping.formats.base import MatchError, Parsed, SourceFormat, best_place
from adapter.mapping.nodes import MessageMapping
from adapter.mapping.schema import SCALAR, STRINGS


class JsonFormat(SourceFormat):
    name = "json"
    media_types: ClassVar[Mapping[str, str]] = {"json": "application/json"}
    match_schema: ClassVar[dict[str, Any]] = {
        "anyOf": [{"required": ["when"]}, {"required": ["exists"]}],
        "properties": {
            "when": {"type": "object", "minProperties": 1, "additionalProperties": SCALAR},
            "exists": STRINGS,
        },
    }

    def parse(
        self, raw: bytes, *, max_bytes: int | None = None, limits: InputLimits = DEFAULT_LIMITS
    ) -> Parsed:
        parsed = json_paths.parse_json(raw, max_bytes=max_bytes, max_depth=limits.nesting_depth)
        return Parsed(parsed.data, parsed.encoding, parsed.issues)

    def locate_value(self, document: Any, value: str) -> str | None:
        """``$.referral.slipNo``: the string holding ``value``."""
        found = best_place(value, _strings(document, ()))
        return None if found is None else json_paths.format_location(found)

    def compile_path(self, text: str, options: Any) -> json_paths.JsonPath:
        return json_paths.compile_path(text)

    def compile_match(self, match: dict[str, Any], options: Any) -> json_paths.JsonMatch:
        for key, entries in (
            ("when", list(match.get("when") or {})),
            ("exists", list(match.get("exists") or [])),
        ):
            for entry in entries:
                try:
                    json_paths.compile_match(
                        {entry: ""} if key == "when" else None, [entry] if key == "exists" else None
                    )
                except ValueError as exc:
                    raise MatchError(key, str(exc)) from None
        return json_paths.compile_match(match.get("when"), match.get("exists"))

    def compile_ignore(self, entry: str, options: Any) -> json_paths.JsonPath:
        path = json_paths.compile_path(entry)
        if not path.absolute:
            raise ValueError(f"{entry!r}: ignore paths start at the document ($)")
        return path

    def describe(self, document: Any) -> tuple[str, str]:
        return "the document", "$"

    def start(
        self, document: Any, mapping: MessageMapping
    ) -> tuple[json_paths.JsonSource, Any, list[Issue]]:
        source = json_paths.JsonSource(document, json_paths.JsonReadTracker())
        return source, json_paths.JsonScope(document, ()), []

    def unread(
        self, document: Any, source: Any, mapping: MessageMapping
    ) -> list[tuple[str, str, bool]]:
        return json_paths.unread(document, source.tracker, mapping.ignore, mapping.clinical)


def _strings(node: Any, at: json_paths.Location) -> Iterator[tuple[json_paths.Location, str]]:
    """Every string (and number) of the document, by its location."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*at, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*at, index))
    elif isinstance(node, str | int | float) and not isinstance(node, bool):
        yield at, str(node)


FORMAT = JsonFormat()
