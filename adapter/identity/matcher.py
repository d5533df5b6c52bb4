"""One pair of Patient records compared under the rules: match, review or none, with the
rule that decided, a score and the evidence per field. No database here.

The tiers, in order (docs/patient-index.md):
  guards      an unknown patient (无名氏, 急诊未知) is never compared
  T0 hard key the same valid national ID: match when its birth date and sex agree with both
              records and the names are equal or differ by same-sound characters only;
              review (id-conflict) when birth date or sex disagree or the names share
              nothing; review (possible-match) for a partly different name (a typo)
  different   two different valid national IDs: two people, never linked
  T1 card key the same health card / insurance number, name and birth date equal: match
  near ID     an invalid ID one typing slip from the other record's valid ID, name, birth
              date and sex agreeing as for the hard key: ``near_id.outcome``
  T2          name pinyin, birth date, sex and (phone or township) equal: review
A match without national-ID agreement between twins or siblings (same surname, birth date
and household, given names one character apart) becomes a review (twin-guard), and a name
with a placeholder character is never matched without the national ID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapter.identity.features import Features
from adapter.identity.names import (
    UNKNOWN_NAMES,
    Name,
    NameComparison,
    compare_names,
    is_placeholder,
)
from adapter.identity.rules import MatchingRules

POSSIBLE_MATCH = "possible-match"
ID_CONFLICT = "id-conflict"
TWIN_GUARD = "twin-guard"


@dataclass(slots=True)
class Decision:
    outcome: str  # match | review | none
    rule: str  # hard-key, hard-key-conflict, card-key, demographics, different-ids, ...
    score: float
    evidence: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # for a review: possible-match, id-conflict, twin-guard

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "rule": self.rule,
            "score": self.score,
            "reason": self.reason,
            "evidence": self.evidence,
        }


def _unknown(name: Name, rules: MatchingRules) -> bool:
    return name.unknown or name.text in rules.guards.unknown_names


def _placeholder(name: Name, rules: MatchingRules) -> bool:
    extra = rules.guards.extra_placeholders
    return any(is_placeholder(ch) or ch in extra for ch in name.text)


def _evidence(a: Features, b: Features, names: NameComparison) -> dict[str, str]:
    def pair(x: Any, y: Any) -> str:
        if not x or not y:
            return "missing"
        return "agree" if x == y else "disagree"

    def overlap(x: list[Any], y: list[Any]) -> str:
        if not x or not y:
            return "missing"
        return "agree" if any(v in y for v in x) else "disagree"

    if names.equal:
        name = "agree"
    elif names.same_sound:
        name = "same-sound" if not names.wildcards else "wildcard"
    else:
        name = "disagree" if a.name and b.name else "missing"
    return {
        "name": name,
        "birthDate": pair(a.birth, b.birth),
        "gender": pair(a.sex, b.sex),
        "nationalId": overlap(a.national_ids, b.national_ids),
        "weakNationalId": overlap(a.weak_ids + a.national_ids, b.weak_ids + b.national_ids)
        if (a.weak_ids or b.weak_ids)
        else "missing",
        "card": overlap(a.cards, b.cards),
        "phone": overlap(a.phones, b.phones),
        "township": pair(a.township, b.township),
    }


def _score(evidence: dict[str, str]) -> float:
    agree = sum(1 for v in evidence.values() if v in ("agree", "same-sound", "wildcard"))
    compared = sum(1 for v in evidence.values() if v != "missing")
    return round(agree / compared, 3) if compared else 0.0


def one_slip_apart(weak: str, valid: str) -> bool:
    """``weak`` (an ID failing its check) is ``valid`` typed with one wrong character or two
    neighbouring characters swapped; a 15-digit ``weak`` is compared with the 15-digit form
    of ``valid``."""
    weak, valid = weak.upper(), valid.upper()
    if len(weak) == 15 and len(valid) == 18:
        valid = valid[:6] + valid[8:17]
    if len(weak) != len(valid) or weak == valid:
        return False
    diff = [i for i, (x, y) in enumerate(zip(weak, valid, strict=True)) if x != y]
    if len(diff) == 1:
        return True
    i, j = diff[0], diff[-1]
    return len(diff) == 2 and j == i + 1 and weak[i] == valid[j] and weak[j] == valid[i]


def _near_id(a: Features, b: Features) -> bool:
    return any(one_slip_apart(w, v) for w in a.weak_ids for v in b.national_ids) or any(
        one_slip_apart(w, v) for w in b.weak_ids for v in a.national_ids
    )


def twins_or_siblings(a: Features, b: Features, names: NameComparison) -> bool:
    """Same surname and birth date, one household (phone or township), given names one
    character apart: the guard's picture of twins and siblings."""
    if not names.same_surname or a.birth is None or a.birth != b.birth:
        return False
    household = bool(set(a.phones) & set(b.phones)) or (
        a.township is not None and a.township == b.township
    )
    return household and not names.equal and names.differences + names.sound_differences == 1


def classify(a: Features, b: Features, rules: MatchingRules) -> Decision:
    na, nb = a.parsed_name, b.parsed_name
    names = compare_names(na, nb)
    evidence = _evidence(a, b, names)
    score = _score(evidence)

    def decide(outcome: str, rule: str, reason: str | None = None) -> Decision:
        if outcome == "review" and reason is None:
            reason = POSSIBLE_MATCH
        return Decision(outcome, rule, score, evidence, reason if outcome == "review" else None)

    if _unknown(na, rules) or _unknown(nb, rules):
        return decide("none", "guard-unknown-patient")

    shared_id = set(a.national_ids) & set(b.national_ids)
    if shared_id:
        demographics_disagree = (
            not a.id_birth_sex_agree
            or not b.id_birth_sex_agree
            or evidence["birthDate"] == "disagree"
            or evidence["gender"] == "disagree"
        )
        if demographics_disagree or (names.nothing_in_common and na.text and nb.text):
            return decide(rules.hard_key.conflict, "hard-key-conflict", ID_CONFLICT)
        if names.equal or (
            names.differences == 0
            and names.sound_differences <= rules.hard_key.same_sound_differences
        ):
            return decide(rules.hard_key.outcome, "hard-key")
        return decide(rules.hard_key.name_differs, "hard-key-name-differs")
    if a.national_ids and b.national_ids:
        return decide("none", "different-national-ids")

    placeholder = _placeholder(na, rules) or _placeholder(nb, rules)
    shared_card = any(card in b.cards for card in a.cards)
    if shared_card:
        name_ok = names.equal or (
            names.differences == 0
            and names.wildcards == 0
            and names.sound_differences <= rules.card_key.same_sound_differences
        )
        if name_ok and evidence["birthDate"] == "agree" and not placeholder:
            outcome = rules.card_key.outcome
            if outcome == "match" and rules.guards.twins and twins_or_siblings(a, b, names):
                return decide("review", "card-key", TWIN_GUARD)
            return decide(outcome, "card-key")
        if evidence["birthDate"] == "agree" or not names.nothing_in_common:
            return decide("review", "card-key-conflict", ID_CONFLICT)
        return decide("none", "card-key-conflict")

    if (
        rules.near_id.outcome != "none"
        and not placeholder
        and a.id_birth_sex_agree
        and b.id_birth_sex_agree
        and evidence["birthDate"] == "agree"
        and evidence["gender"] == "agree"
        and (
            names.equal
            or (
                names.differences == 0
                and names.wildcards == 0
                and names.sound_differences <= rules.hard_key.same_sound_differences
            )
        )
        and _near_id(a, b)
    ):
        if rules.guards.twins and twins_or_siblings(a, b, names):
            return decide("review", "near-id", TWIN_GUARD)
        return decide(rules.near_id.outcome, "near-id")

    if (
        names.same_sound
        and len(na.text) >= 2
        and evidence["birthDate"] == "agree"
        and evidence["gender"] == "agree"
    ):
        place = {"phone": evidence["phone"], "township": evidence["township"]}
        if any(place[k] == "agree" for k in rules.demographics.any_of):
            reason = (
                TWIN_GUARD
                if rules.guards.twins and twins_or_siblings(a, b, names)
                else POSSIBLE_MATCH
            )
            if rules.demographics.outcome == "match" and (placeholder or reason == TWIN_GUARD):
                return decide("review", "demographics", reason)
            if score <= rules.review_floor:
                return decide("none", "demographics")
            return decide(rules.demographics.outcome, "demographics", reason)
    return decide("none", "no-rule")


__all__ = ["UNKNOWN_NAMES", "Decision", "classify", "one_slip_apart", "twins_or_siblings"]
