"""Golden cases: a fixture's translation compared field by field with the file stored beside it.

A fixtures folder holds ``cases.yaml`` files; each entry names an input ``file`` (relative to
the ``cases.yaml``) and the ``source`` system it comes from. Its golden file is the input's
path with the extension replaced by ``.expected.json``, holding
``{"resources": [...], "issues": [...]}`` as ``Pipeline.translate`` makes them. Entries that
state how a bad input must fail have no golden file: ``outcome:`` (quarantined or
processed-with-warnings) with the issue's ``location`` and ``diagnostics``
(fixtures/hl7v2/bad), or ``quarantined: [texts]``, texts the errors must contain.

A case with ``capture: mllp`` is a capture of a connection: MLLP frames back to back
(``0x0B message 0x1C 0x0D`` ...), cut into messages by the MLLP listener's own frame reader,
each translated; its golden file holds ``{"messages": [{"resources": [...], "issues":
[...]}, ...]}`` in the order of the capture.
Used by ``adapter mappings test`` and the pytest golden tests (tests/golden.py), so both
diff the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from adapter.connectors.mllp_framing import FrameReader
from adapter.errors import AdapterError, Issue

CASES_FILE = "cases.yaml"
CAPTURES = ("mllp",)  # the kinds of capture a case may be (``capture:``)
GOLDEN_SUFFIX = ".expected.json"
QUARANTINED = "quarantined"


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)[:120]


def diff_json(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Readable differences: one line per differing field, with its path."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            here = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{here}: missing (expected {_short(expected[key])})")
            elif key not in expected:
                out.append(f"{here}: unexpected {_short(actual[key])}")
            else:
                out.extend(diff_json(expected[key], actual[key], here))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        out = []
        if len(expected) != len(actual):
            out.append(f"{path}: {len(actual)} items, expected {len(expected)}")
        for index, (e, a) in enumerate(zip(expected, actual, strict=False)):
            out.extend(diff_json(e, a, f"{path}[{index}]"))
        return out
    if expected != actual:
        return [
            f"{path}: {json.dumps(actual, ensure_ascii=False)} != expected "
            f"{json.dumps(expected, ensure_ascii=False)}"
        ]
    return []


def write_golden(path: Path, actual: Any) -> None:
    path.write_text(json.dumps(actual, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def golden_path(folder: Path, file: str) -> Path:
    """``std-hl7v2/cbc-basic.hl7`` -> ``<folder>/std-hl7v2/cbc-basic.expected.json``."""
    return folder / (str(PurePosixPath(file).with_suffix("")) + GOLDEN_SUFFIX)


@dataclass(slots=True)
class Case:
    label: str  # the input's path relative to the fixtures root (printed)
    folder: Path  # the folder of its cases.yaml
    entry: dict[str, Any]

    @property
    def input(self) -> Path:
        return self.folder / self.entry["file"]

    @property
    def golden(self) -> Path:
        return golden_path(self.folder, self.entry["file"])

    @property
    def capture(self) -> str | None:
        return self.entry.get("capture")

    @property
    def is_outcome_case(self) -> bool:
        return "outcome" in self.entry or bool(self.entry.get("quarantined"))


@dataclass(slots=True)
class CaseResult:
    label: str
    ok: bool
    lines: list[str] = field(default_factory=list)  # the field diff or the reason
    written: Path | None = None  # --update: the golden file rewritten


def find_cases(root: Path) -> tuple[list[Case], list[str]]:
    """Every entry of every cases.yaml below root; and the cases.yaml files that are unusable
    (each a line naming the file: a failure of its own)."""
    cases: list[Case] = []
    broken: list[str] = []
    for cases_file in sorted(root.rglob(CASES_FILE)):
        where = cases_file.relative_to(root).as_posix()
        try:
            entries = yaml.safe_load(cases_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            broken.append(f"{where}: not readable ({type(exc).__name__})")
            continue
        if not isinstance(entries, list):
            broken.append(f"{where}: must be a list of cases")
            continue
        for number, entry in enumerate(entries, 1):
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("file"), str)
                and isinstance(entry.get("source"), str)
            ):
                broken.append(f"{where}: case {number} needs `file` and `source`")
                continue
            label = (cases_file.parent.relative_to(root) / entry["file"]).as_posix()
            cases.append(Case(label, cases_file.parent, entry))
    return cases, broken


Translate = Callable[[bytes, str], Any]  # Pipeline.translate: (raw, source) -> Outcome


def split_capture(raw: bytes, kind: str) -> list[bytes]:
    """The messages of a capture, in order: for ``mllp`` the frames the MLLP listener would
    cut out of these bytes (``adapter.connectors.mllp_framing.FrameReader``). A frame cut
    off or left open is a ``ValueError``: a golden capture holds whole messages."""
    if kind not in CAPTURES:
        raise ValueError(f"capture: {kind!r} is not one of {', '.join(CAPTURES)}")
    reader = FrameReader(len(raw) + 1)
    frames = reader.feed(raw)
    if reader.pending or any(not isinstance(f, bytes) for f in frames):
        raise ValueError("the capture holds a frame cut off or not ended")
    if not frames:
        raise ValueError("the capture holds no MLLP frame")
    return [f for f in frames if isinstance(f, bytes)]


def translate_capture(raw: bytes, kind: str, source: str, translate: Translate) -> Any:
    """``{"messages": [{"resources", "issues"}, ...]}`` of a capture, one per message."""
    messages = []
    for message in split_capture(raw, kind):
        outcome = translate(message, source)
        messages.append(
            {"resources": outcome.resources, "issues": [i.as_dict() for i in outcome.issues]}
        )
    return {"messages": messages}


def run_case(case: Case, translate: Translate, *, update: bool = False) -> CaseResult:
    """Translate one case and compare (or, with update, rewrite its golden file)."""
    try:
        raw = case.input.read_bytes()
    except OSError as exc:
        return CaseResult(case.label, False, [f"input not readable ({type(exc).__name__})"])
    if case.capture is not None:
        try:
            actual = translate_capture(raw, case.capture, case.entry["source"], translate)
        except ValueError as exc:
            return CaseResult(case.label, False, [str(exc)])
        except AdapterError as exc:
            return CaseResult(case.label, False, [exc.message])
        issues = [i for m in actual["messages"] for i in m["issues"]]
    else:
        try:
            outcome = translate(raw, case.entry["source"])
        except AdapterError as exc:  # an unknown source, a mapping that does not load
            return CaseResult(case.label, False, [exc.message])
        issues = [i.as_dict() for i in outcome.issues]
        if case.entry.get("quarantined"):
            return CaseResult(
                case.label,
                *_check_refused(case.entry["quarantined"], outcome.failed, outcome.issues),
            )
        if case.is_outcome_case:
            return CaseResult(
                case.label, *_check_outcome(case.entry, outcome.failed, outcome.issues)
            )
        actual = {"resources": outcome.resources, "issues": issues}
    golden = case.golden
    if update:
        exists = golden.exists()
        if exists and not diff_json(_read(golden), actual):
            return CaseResult(case.label, True)
        write_golden(golden, actual)
        errors = sum(1 for i in issues if i["severity"] in ("error", "fatal"))
        note = [f"the output has {errors} errors: is that what is right?"] if errors else []
        return CaseResult(case.label, True, note, written=golden)
    if not golden.exists():
        return CaseResult(
            case.label,
            False,
            [
                f"no golden file {golden.name}: write it with --update, then read it before "
                "committing (it is a claim about what is right)"
            ],
        )
    try:
        expected = _read(golden)
    except (OSError, ValueError) as exc:
        return CaseResult(
            case.label, False, [f"{golden.name} is not readable JSON ({type(exc).__name__})"]
        )
    lines = diff_json(expected, actual)
    return CaseResult(case.label, not lines, lines)


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _check_outcome(
    entry: dict[str, Any], failed: bool, issues: list[Issue]
) -> tuple[bool, list[str]]:
    """A bad-input case: quarantined (or accepted with a warning) with the issue it names.
    What is printed names locations and codes only: diagnostics may quote patient data."""
    want_failed = entry["outcome"] == QUARANTINED
    if failed != want_failed:
        got = QUARANTINED if failed else "accepted"
        return False, [f"outcome: {got} != expected {entry['outcome']}"]
    severities = ("error", "fatal") if want_failed else ("warning",)
    candidates = [i for i in issues if i.severity in severities]
    if any(_matches(i, entry) for i in candidates):
        return True, []
    found = ", ".join(f"{i.severity}:{i.code}@{i.location or '-'}" for i in candidates) or "none"
    return False, [
        f"no {'/'.join(severities)} at {entry.get('location') or 'the message'} "
        f"saying {_texts(entry)}; found: {found}"
    ]


def _check_refused(texts: Any, failed: bool, issues: list[Issue]) -> tuple[bool, list[str]]:
    """``quarantined: [texts]``: refused, each text in the diagnostics of some error."""
    if not failed:
        return False, [f"outcome: accepted != expected {QUARANTINED}"]
    errors = [i.diagnostics for i in issues if i.severity in ("error", "fatal")]
    wanted = texts if isinstance(texts, list) else [texts]
    missing = [str(t) for t in wanted if not any(str(t) in e for e in errors)]
    if not missing:
        return True, []
    found = (
        ", ".join(
            f"{i.severity}:{i.code}@{i.location or '-'}"
            for i in issues
            if i.severity in ("error", "fatal")
        )
        or "none"
    )
    return False, [f"no error saying {t!r}; found: {found}" for t in missing]


def _texts(entry: dict[str, Any]) -> list[str]:
    wanted = entry.get("diagnostics") or []
    return [str(t) for t in (wanted if isinstance(wanted, list) else [wanted])]


def _matches(issue: Issue, entry: dict[str, Any]) -> bool:
    where = entry.get("location")
    if where is None:  # nothing inside the input to name: the issue is about the whole input
        located = issue.location in (None, "message")
    else:
        located = (issue.location or "").startswith(str(where))
    texts = _texts(entry)
    said = not texts or any(t.lower() in issue.diagnostics.lower() for t in texts)
    return located and said


__all__ = [
    "Case",
    "CaseResult",
    "diff_json",
    "find_cases",
    "golden_path",
    "run_case",
    "split_capture",
    "translate_capture",
    "write_golden",
]
