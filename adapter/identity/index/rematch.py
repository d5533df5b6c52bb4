"""A dry run of a rule change: which links the new rules would add, remove or change,
computed pair by pair over the records that share a blocking key, before anything is
written (the caller's transaction is only read). Manual links (a reviewer's, a merge's)
never change: a pair with a manual record is reported as kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.identity.features import Features
from adapter.identity.index import records as rows
from adapter.identity.index.locks import key_hash
from adapter.identity.matcher import classify
from adapter.identity.rules import MatchingRules
from adapter.store.identity_tables import IdentityRecord


@dataclass(slots=True)
class RematchReport:
    from_versions: set[int] = field(default_factory=set)
    to_version: int = 0
    pairs: int = 0
    add: list[dict[str, Any]] = field(default_factory=list)  # would link (now apart)
    remove: list[dict[str, Any]] = field(default_factory=list)  # would part (now linked)
    change: list[dict[str, Any]] = field(default_factory=list)  # linked, by another rule
    manual_kept: int = 0

    def summary(self, limit: int = 50) -> dict[str, Any]:
        return {
            "fromRuleVersions": sorted(self.from_versions),
            "toRuleVersion": self.to_version,
            "pairsCompared": self.pairs,
            "add": len(self.add),
            "remove": len(self.remove),
            "change": len(self.change),
            "manualKept": self.manual_kept,
            "examples": {
                "add": self.add[:limit],
                "remove": self.remove[:limit],
                "change": self.change[:limit],
            },
        }


def dry_run(session: Session, rules: MatchingRules) -> RematchReport:
    report = RematchReport(to_version=rules.version)
    records = {r.patient_id: r for r in session.scalars(select(IdentityRecord))}
    report.from_versions = {r.rule_version for r in records.values()}
    features = {pid: Features.from_json(r.features) for pid, r in records.items()}
    seen: set[tuple[str, str]] = set()
    for pid, f in features.items():
        hashes = sorted({key_hash(k) for k in f.blocking_keys()})
        for other in rows.candidates(session, hashes, pid):
            pair = rows.ordered(pid, other.patient_id)
            if pair in seen or other.patient_id not in features:
                continue
            seen.add(pair)
            report.pairs += 1
            a, b = records[pair[0]], records[pair[1]]
            linked = a.person_id == b.person_id
            if "manual" in (a.link_kind, b.link_kind):
                report.manual_kept += 1
                continue
            decision = classify(features[pair[0]], features[pair[1]], rules)
            entry = {
                "records": [f"Patient/{pair[0]}", f"Patient/{pair[1]}"],
                "rule": decision.rule,
                "outcome": decision.outcome,
                "score": decision.score,
            }
            if decision.outcome == "match" and not linked:
                report.add.append(entry)
            elif decision.outcome != "match" and linked:
                report.remove.append(entry)
            elif linked and decision.rule not in (a.rule, b.rule):
                report.change.append(entry)
    return report
