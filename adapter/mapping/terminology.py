"""Code tables (concept maps) as data, each with an explicit rule for codes it does not know.

A table maps source codes to target codings. What happens to an unknown code is a decision
written in the table (``unmapped.action``), never an accident of the code, and this module
is where that rule is applied (``ConceptMap.translate``):

* ``keep``   the source code itself is used as the target code;
* ``fixed``  a given target code (e.g. ``unknown``);
* ``omit``   no target code: the element stays empty (the local coding is kept elsewhere);
* ``error``  the input is quarantined with the location of the code.

``unmapped.report`` (``none``, ``information``, ``warning``) says whether an unmapped code
is listed in the message's issues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Action = Literal["keep", "fixed", "omit", "error"]
Report = Literal["none", "information", "warning"]
_TRANSLATED_MAX = 4096
_OUTCOME = {"keep": "; kept as is", "fixed": "; default used", "omit": "; left out"}


@dataclass(frozen=True, slots=True)
class Target:
    code: str
    display: str | None = None
    system: str | None = None


@dataclass(frozen=True, slots=True)
class Unmapped:
    """What to report about a code the table does not know: an error (``action: error``: the
    input is quarantined) or a notice (``report: warning`` / ``information``)."""

    severity: Literal["error", "warning", "information"]
    message: str


@dataclass(slots=True)
class ConceptMap:
    name: str
    file: str
    version: int
    system: str | None  # default target system of entries
    entries: dict[str, Target]
    case_sensitive: bool = False
    action: Action = "omit"
    fixed: Target | None = None
    report: Report = "information"
    # what the reader should do about an unknown code (unmapped.hint), added to the notice
    hint: str | None = None
    description: str | None = None
    _folded: dict[str, Target] = field(default_factory=dict, repr=False)
    # what ``translate`` gave per (code, report): a pure function of the table, which is
    # not changed once made (as ``_folded`` assumes); a feed repeats its codes (decision 0121)
    _translated: dict[tuple[str, bool], tuple[Target | None, Unmapped | None]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.case_sensitive:
            self._folded = {k.strip().casefold(): v for k, v in self.entries.items()}

    def lookup(self, code: str) -> Target | None:
        """The target for ``code``, or None when the table has no entry for it."""
        key = code.strip()
        if self.case_sensitive:
            return self.entries.get(key)
        return self._folded.get(key.casefold())

    def with_system(self, target: Target) -> Target:
        if target.system or not self.system:
            return target
        return Target(target.code, target.display, self.system)

    def translate(self, code: str, report: bool = True) -> tuple[Target | None, Unmapped | None]:
        """The target of ``code`` (with the table's system), and what to report when the
        table does not know it: the table's ``unmapped`` rule decides both. ``report=False``
        (a display or system looked up beside the code) reports nothing but an error.
        ``report`` may be given by position (decision 0144: a call with a keyword is a
        call from C, with an interpreter loop of its own)."""
        key = (code, report)
        known = self._translated.get(key)
        if known is not None:
            return known
        known = self._translate(code, report)
        if len(self._translated) >= _TRANSLATED_MAX:  # codes as sent: bounded all the same
            self._translated.clear()
        self._translated[key] = known
        return known

    def _translate(self, code: str, report: bool) -> tuple[Target | None, Unmapped | None]:
        target = self.lookup(code)
        if target is not None:
            return self.with_system(target), None
        message = f"code {code!r} is not in concept map {self.name!r}"
        if self.action == "error":
            return None, Unmapped("error", message)
        notice = None
        if report and self.report != "none":
            outcome = message + _OUTCOME[self.action]
            if self.action == "fixed" and self.fixed is not None:
                outcome += f" ({self.fixed.code})"
            if self.hint:
                outcome += f". {self.hint}"
            notice = Unmapped(self.report, outcome)
        if self.action == "keep":
            # the source code as is: not a code of the table's target system
            return Target(code, None, None), notice
        if self.action == "fixed" and self.fixed is not None:
            return self.with_system(self.fixed), notice
        return None, notice


def concept_map_from_data(name: str, file: str, data: dict) -> ConceptMap:
    """Build a table from a checked concept-map file (see mappings schema)."""
    entries: dict[str, Target] = {}
    for source, target in (data.get("map") or {}).items():
        if isinstance(target, dict):
            entries[str(source)] = Target(
                str(target["code"]), target.get("display"), target.get("system")
            )
        else:
            entries[str(source)] = Target(str(target))
    unmapped = data.get("unmapped") or {}
    fixed = None
    if unmapped.get("action") == "fixed":
        fixed = Target(str(unmapped["code"]), unmapped.get("display"), unmapped.get("system"))
    return ConceptMap(
        name=name,
        file=file,
        version=int(data["version"]),
        system=data.get("target_system"),
        entries=entries,
        case_sensitive=bool(data.get("case_sensitive", False)),
        action=unmapped.get("action", "omit"),
        fixed=fixed,
        report=unmapped.get("report", "information"),
        hint=unmapped.get("hint"),
        description=data.get("description"),
    )
