"""CSV as a source format: a header row and data rows (``adapter.mapping.csv_rows``), column
paths, ``match:`` on the header's columns, each row translated and imported as its own item,
unread columns listed once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any, ClassVar

from adapter.errors import Issue
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping import csv_rows
from adapter.mapping.engine import first_mention_wins, run_steps
from adapter.mapping.evaluation import Evaluation
from adapter.mapping.formats.base import Parsed, SourceFormat, best_place
from adapter.mapping.nodes import MappingSet, MessageMapping
from adapter.mapping.schema import STRINGS
from adapter.mapping.translation import (
    ResourceCheck,
    Translation,
    TranslationContext,
    has_errors,
    new_state,
    result,
    unread_issue,
)


class CsvFormat(SourceFormat):
    name = "csv"
    media_types: ClassVar[Mapping[str, str]] = {"csv": "text/csv"}
    match_schema: ClassVar[dict[str, Any]] = {
        "required": ["columns"],
        "properties": {"columns": STRINGS},
    }

    def parse(
        self, raw: bytes, *, max_bytes: int | None = None, limits: InputLimits = DEFAULT_LIMITS
    ) -> Parsed:
        table = csv_rows.read_csv(raw, max_bytes=max_bytes)
        return Parsed(table, table.encoding, table.issues)

    def compile_path(self, text: str, options: Any) -> csv_rows.CsvColumn:
        return csv_rows.compile_path(text)

    def compile_match(self, match: dict[str, Any], options: Any) -> csv_rows.CsvMatch:
        return csv_rows.CsvMatch(tuple(str(c).strip() for c in match["columns"]))

    def compile_ignore(self, entry: str, options: Any) -> str:
        return csv_rows.compile_path(entry).name

    def locate_value(self, document: csv_rows.CsvTable, value: str) -> str | None:
        return best_place(value, (cell for row in document.rows for cell in _cells(row)))

    def describe(self, document: csv_rows.CsvTable) -> tuple[str, str]:
        return f"the file (columns {', '.join(document.header)})", "row 1"

    def start(
        self, document: csv_rows.CsvTable, mapping: MessageMapping
    ) -> tuple[csv_rows.CsvSource, Any, list[Issue]]:
        return csv_rows.CsvSource(csv_rows.CsvReadTracker()), None, []

    def unread(
        self, document: csv_rows.CsvTable, source: Any, mapping: MessageMapping
    ) -> list[tuple[str, str]]:
        return csv_rows.unread(document, source.tracker, set(mapping.ignore), mapping.clinical)

    def translate(
        self,
        mappings: MappingSet,
        document: csv_rows.CsvTable,
        context: TranslationContext,
        check: ResourceCheck | None = None,
    ) -> Translation:
        """Translate each row of a CSV table as its own item: its own resources and issues.

        A row with an error (a mapping error, a resource ``check`` rejects, a resource another
        row made differently) is not imported; when other rows are, its errors are reported
        as warnings "row N not imported: ..." so the file is processed with warnings and the
        bad rows stay listed. When no row can be imported the errors stay errors (the file is
        quarantined as a whole). The same Patient, Organization or Practitioner in several
        rows: the first row's wins."""
        table = document
        mapping = self.select(mappings, table)
        if isinstance(mapping, Issue):
            return Translation([], [mapping])
        source, _, _ = self.start(table, mapping)
        resources: dict[tuple[str, str], dict[str, Any]] = {}
        made_by: dict[tuple[str, str], int] = {}
        policies: dict[tuple[str, str], dict[str, Any]] = {}
        per_row: list[tuple[int, list[Issue], bool]] = []  # (row, issues, imported)
        for row in table.rows:
            state = new_state(mappings, self.name, source, context)
            state.issues.extend(row.problems)
            if not row.problems:
                variables = context.variables_for(mappings.formats[self.name], mapping)
                run_steps(Evaluation(state, row, variables), mapping.steps)
            produced = list(state.resources.values())
            issues = list(state.issues)
            if check is not None and produced:
                issues.extend(check(produced, None, partial(_locate_in_row, row)))
            keys = [(r["resourceType"], r["id"]) for r in produced]
            if not has_errors(issues):
                issues.extend(
                    _conflicts(keys, produced, resources, made_by, row.number, state.policies)
                )
            imported = not has_errors(issues)
            if imported:
                for key, resource in zip(keys, produced, strict=True):
                    resources.setdefault(key, resource)
                    made_by.setdefault(key, row.number)
                policies.update(state.policies)
            per_row.append((row.number, issues, imported))
        out = _row_issues(per_row)
        if not table.rows:
            out.append(
                Issue(
                    "information",
                    "informational",
                    "the file has a header and no rows",
                    location="row 1",
                )
            )
        unread = self.unread(table, source, mapping)
        out.extend(unread_issue(*item) for item in unread)
        origins = {key: f"row {number}" for key, number in made_by.items()}
        return result(list(resources.values()), out, mapping, unread, policies, origins)


def _cells(row: csv_rows.CsvRow) -> Iterator[tuple[str, str]]:
    return ((f"row {row.number}, column {name}", text) for name, text in row.cells.items())


def _locate_in_row(row: csv_rows.CsvRow, value: str) -> str | None:
    """``row 3, column 转诊单号``: the cell of ``row`` holding ``value``."""
    return best_place(value, _cells(row))


def _conflicts(
    keys: list[tuple[str, str]],
    produced: list[dict[str, Any]],
    resources: dict[tuple[str, str], dict[str, Any]],
    made_by: dict[tuple[str, str], int],
    number: int,
    policies: dict[tuple[str, str], dict[str, Any]],
) -> list[Issue]:
    """A resource an earlier row made with different content, unless its template keeps the
    first mention (``on_conflict: {in_message: first-wins}``: people and places)."""
    out = []
    for key, resource in zip(keys, produced, strict=True):
        earlier = resources.get(key)
        if earlier is None or earlier == resource or first_mention_wins(policies.get(key)):
            continue
        out.append(
            Issue(
                "error",
                "duplicate",
                f"{key[0]}/{key[1]} is also made by row {made_by[key]} with different content",
                location=f"row {number}",
            )
        )
    return out


def _row_issues(per_row: list[tuple[int, list[Issue], bool]]) -> list[Issue]:
    """Each row's issues located at the row; a rejected row's errors become warnings when
    other rows were imported."""
    partial = any(imported for _, _, imported in per_row)
    out: list[Issue] = []
    for number, issues, imported in per_row:
        for issue in issues:
            where = issue.location or f"row {number}"
            if not imported and partial and issue.severity in ("error", "fatal"):
                issue = Issue(
                    "warning",
                    issue.code,
                    f"row {number} not imported: {issue.diagnostics}",
                    location=where,
                    expression=issue.expression,
                )
            elif issue.location is None:
                issue = Issue(
                    issue.severity,
                    issue.code,
                    issue.diagnostics,
                    location=where,
                    expression=issue.expression,
                )
            out.append(issue)
    return out


FORMAT = CsvFormat()
