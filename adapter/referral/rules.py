"""The referral state machine's table (adapter/data/referral-states.yaml), loaded and checked
once: a wrong table stops start-up with file:line, like a wrong consortium file.

The table is data so that who may set what can be read (and changed) without reading code;
adapter/referral/machine.py only applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from adapter.errors import ConfigError
from adapter.yamlsource import LineIndex, YamlSyntaxError, parse_yaml

BASE = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/"
BUSINESS_SYSTEM = BASE + "referral-business-status"
DIRECTION_SYSTEM = BASE + "referral-direction"
FLAG_SYSTEM = BASE + "referral-flag"
REASON_SYSTEM = BASE + "referral-rejection-reason"
TASK_STATUSES = (
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
)
PARTIES = ("sender", "receiver", "either", "adapter")
NEW = "new"  # "from" of a Task that does not exist yet


@dataclass(frozen=True, slots=True)
class StatusRule:
    by: str
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Business:
    code: str
    display: str
    statuses: tuple[str, ...]
    by: str
    rank: int
    reason_required: bool
    definition: str


@dataclass(frozen=True, slots=True)
class Table:
    final: frozenset[str]
    open: frozenset[str]
    status: dict[str, StatusRule]
    business: dict[str, Business]  # in file order
    default_business: dict[str, str]
    reasons: dict[str, str]  # code -> display
    evidence: tuple[tuple[str, ...], ...]
    window_days: int = 30
    encounter: dict[str, dict[str, str]] = field(default_factory=dict)  # status -> class -> code
    discharge_summary: str = "18842-5"
    down_completed_after: str | None = None  # a businessStatus code


FILE = "adapter/data/referral-states.yaml"


def _fail(index: LineIndex, path: tuple[str | int, ...], message: str) -> ConfigError:
    line = index.line_of(path)
    return ConfigError(message, file=f"{index.file}:{line}" if line else index.file)


def parse_table(text: str, file: str = FILE) -> Table:
    """The table from its YAML text; a ConfigError naming file:line when it is wrong."""
    try:
        data, index = parse_yaml(text, file)
    except YamlSyntaxError as exc:
        raise ConfigError(exc.message, file=f"{file}:{exc.line}" if exc.line else file) from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise _fail(index, ("version",), "expected a mapping with version: 1")

    def states(values: Any, path: tuple[str | int, ...], extra: tuple[str, ...] = ()) -> tuple:
        if not isinstance(values, list):
            raise _fail(index, path, "expected a list of Task.status values")
        for n, value in enumerate(values):
            if value not in TASK_STATUSES + extra:
                raise _fail(index, (*path, n), f"unknown Task.status {value!r}")
        return tuple(values)

    def party(value: Any, path: tuple[str | int, ...]) -> str:
        if value not in PARTIES:
            raise _fail(index, path, f"unknown party {value!r}; one of: {', '.join(PARTIES)}")
        return str(value)

    status: dict[str, StatusRule] = {}
    for name, rule in (data.get("status") or {}).items():
        path = ("status", name)
        states([name], path)
        if not isinstance(rule, dict):
            raise _fail(index, path, "expected {by: ..., from: [...]}")
        status[name] = StatusRule(
            party(rule.get("by"), (*path, "by")), states(rule.get("from"), (*path, "from"), (NEW,))
        )
    business: dict[str, Business] = {}
    for code, item in (data.get("business") or {}).items():
        path = ("business", code)
        if not isinstance(item, dict) or not item.get("display"):
            raise _fail(index, path, "expected {display: ..., status: [...], by: ..., rank: N}")
        if not isinstance(item.get("rank"), int):
            raise _fail(index, (*path, "rank"), "rank must be a whole number")
        business[str(code)] = Business(
            str(code),
            str(item["display"]),
            states(item.get("status"), (*path, "status")),
            party(item.get("by"), (*path, "by")),
            int(item["rank"]),
            item.get("reason") == "required",
            " ".join(str(item.get("definition") or item["display"]).split()),
        )
    defaults = data.get("default_business") or {}
    for name, code in defaults.items():
        states([name], ("default_business", name))
        if code not in business or name not in business[code].statuses:
            raise _fail(
                index, ("default_business", name), f"{code!r} is not a businessStatus of {name}"
            )
    reasons = {
        str(code): str((item or {}).get("display") or code)
        for code, item in (data.get("rejection_reasons") or {}).items()
    }
    evidence = data.get("evidence") or []
    if not all(isinstance(g, list) and g for g in evidence):
        raise _fail(index, ("evidence",), "expected a list of lists of resource types")
    messages = data.get("messages") or {}
    encounter: dict[str, dict[str, str]] = {}
    for state, by_class in (messages.get("encounter") or {}).items():
        for kind, code in (by_class or {}).items():
            if code not in business:
                raise _fail(
                    index,
                    ("messages", "encounter", state, kind),
                    f"unknown businessStatus {code!r}",
                )
        encounter[str(state)] = {str(k): str(v) for k, v in (by_class or {}).items()}
    window = messages.get("window_days", 30)
    if not isinstance(window, int) or window < 1:
        raise _fail(index, ("messages", "window_days"), "window_days must be a whole number >= 1")
    after = data.get("down_referral_completed_after")
    if after is not None and after not in business:
        raise _fail(index, ("down_referral_completed_after",), f"unknown businessStatus {after!r}")
    return Table(
        down_completed_after=after,
        window_days=window,
        encounter=encounter,
        discharge_summary=str(messages.get("discharge_summary") or "18842-5"),
        final=frozenset(states(data.get("final") or [], ("final",))),
        open=frozenset(states(data.get("open") or [], ("open",))),
        status=status,
        business=business,
        default_business={str(k): str(v) for k, v in defaults.items()},
        reasons=reasons,
        evidence=tuple(tuple(str(t) for t in g) for g in evidence),
    )


@cache
def table() -> Table:
    """The shipped table (read once)."""
    text = resources.files("adapter.data").joinpath("referral-states.yaml").read_text("utf-8")
    return parse_table(text)


def code_systems(rules: Table | None = None) -> list[dict[str, Any]]:
    """The adapter's CodeSystems of the table, as served at /fhir/CodeSystem/{id}."""
    rules = rules or table()
    common = {
        "resourceType": "CodeSystem",
        "version": "1",
        "status": "active",
        "experimental": False,
        "publisher": "yigongti-fhir-adapter",
        "caseSensitive": True,
        "content": "complete",
    }
    business = [
        {"code": b.code, "display": b.display, "definition": b.definition}
        for b in rules.business.values()
    ]
    reasons = [
        {"code": code, "display": display, "definition": display}
        for code, display in rules.reasons.items()
    ]
    return [
        {
            **common,
            "id": "referral-business-status",
            "url": BUSINESS_SYSTEM,
            "name": "ReferralBusinessStatus",
            "title": "转诊业务状态 (Referral business status)",
            "description": (
                "Where a two-way referral (双向转诊) stands at one receiving facility: "
                "Task.businessStatus of the referral Task (docs/referral-loop.md)."
            ),
            "count": len(business),
            "concept": business,
        },
        {
            **common,
            "id": "referral-rejection-reason",
            "url": REASON_SYSTEM,
            "name": "ReferralRejectionReason",
            "title": "转诊拒绝原因 (Referral rejection reason)",
            "description": (
                "Why a receiving facility declines a referral: Task.statusReason of a "
                "rejected referral Task (docs/referral-loop.md)."
            ),
            "count": len(reasons),
            "concept": reasons,
        },
        {
            **common,
            "id": "referral-flag",
            "url": FLAG_SYSTEM,
            "name": "ReferralFlag",
            "title": "转诊标记 (Referral flag)",
            "description": (
                "Flags of a referral ServiceRequest: kept but flagged by the adapter "
                "(meta.tag), or marked on the slip (category; docs/referral-loop.md)."
            ),
            "count": 3,
            "concept": [
                {
                    "code": "outside-allowed-paths",
                    "display": "转诊路径不在允许范围",
                    "definition": "The referral goes between two member facilities by a path "
                    "the consortium file does not allow (referrals.paths).",
                },
                {
                    "code": "green-channel",
                    "display": "绿色通道",
                    "definition": "The slip sends the patient by the green channel (a "
                    "ServiceRequest.category set by the slip mappings; docs/ledger.md).",
                },
                {
                    "code": "backfilled",
                    "display": "补录",
                    "definition": "The slip was written after the transfer (docs/ledger.md).",
                },
            ],
        },
    ]
