"""The matching rules of the consortium patient index, as data (a versioned YAML file).

The file is checked when the consortium is loaded; a mistake names the file, the line and
the key. Every link the index makes records ``version``, so a rule change can be compared
with what the links were made under (a dry run, adapter/identity/index/rematch.py).
See docs/patient-index.md for the tiers and docs/configuration.md for the keys.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapter.config_file import first_problem, located, read_config

NATIONAL_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD_SYSTEM = "urn:oid:2.16.156.10011.1.19"
INSURANCE_SYSTEM = "https://yigongti-fhir-adapter.github.io/fhir/sid/medical-insurance"

Outcome = Literal["match", "review", "none"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Card(_Strict):
    system: str = Field(min_length=1)
    name: str = Field(min_length=1)


class Identifiers(_Strict):
    national_id: str = NATIONAL_ID_SYSTEM
    cards: list[Card] = Field(
        default_factory=lambda: [
            Card(system=HEALTH_CARD_SYSTEM, name="居民健康卡"),
            Card(system=INSURANCE_SYSTEM, name="医保"),
        ]
    )


class HardKey(_Strict):
    """T0: the same valid national ID, its birth date and sex agreeing with both records."""

    outcome: Outcome = "match"
    # how many characters may differ when they sound the same (王方 / 王芳)
    same_sound_differences: int = Field(1, ge=0, le=2)
    # the same ID and demographics, but the names differ beyond that (a typo): review
    name_differs: Outcome = "review"
    # the same ID with another birth date or sex, or a name with nothing in common
    conflict: Outcome = "review"


class CardKey(_Strict):
    """T1: the same health card / insurance number with name and birth date equal."""

    outcome: Outcome = "match"
    same_sound_differences: int = Field(0, ge=0, le=2)


class NearId(_Strict):
    """An invalid national ID one typing slip (one character, or two neighbours swapped)
    away from the other record's valid ID, with name, birth date and sex agreeing as the
    hard key asks. The invalid ID is never a key (it finds no candidate): it is evidence
    added to the demographics of a pair found by birth date and surname. Off (``none``)
    unless the rules file names an outcome."""

    outcome: Outcome = "none"


class Demographics(_Strict):
    """T2: name pinyin, birth date and sex equal, and phone or township equal."""

    outcome: Outcome = "review"
    any_of: list[Literal["phone", "township"]] = Field(
        default_factory=lambda: ["phone", "township"], min_length=1
    )


class Guards(_Strict):
    twins: bool = True  # same surname, birth date, phone or address; given names 1 apart
    extra_placeholders: list[str] = Field(default_factory=list)
    unknown_names: list[str] = Field(default_factory=list)

    @field_validator("extra_placeholders")
    @classmethod
    def _one_character(cls, value: list[str]) -> list[str]:
        for item in value:
            if len(item) != 1:
                raise ValueError(f"a placeholder is one character, not {item!r}")
        return value


class Limits(_Strict):
    """Bounds on the work one record costs, whatever the size of its blocks (decision 0056).

    A blocking key shared by thousands of records (a placeholder name such as 无名氏 under
    one birth date, test patients, newborns registered as 某某之子 with the mother's phone)
    would otherwise be compared with every one of them and queue a review item per pair:
    quadratic in the block. The index reads, per key, the ``candidates_per_key`` records
    indexed most recently, and queues at most ``reviews_per_record`` items per record (the
    strongest first); what it left out is written in each item's evidence
    (``oversizedBlock``). A national ID or card key is shared by one person's records: it
    stays far below the limit, so a record carrying one is still found by it."""

    candidates_per_key: int = Field(50, ge=1, le=10_000)
    reviews_per_record: int = Field(10, ge=1, le=10_000)


class MatchingRules(_Strict):
    version: int = Field(ge=1)
    kind: Literal["matching-rules"]
    description: str | None = None
    identifiers: Identifiers = Field(default_factory=Identifiers)
    hard_key: HardKey = Field(default_factory=HardKey)
    card_key: CardKey = Field(default_factory=CardKey)
    near_id: NearId = Field(default_factory=NearId)
    demographics: Demographics = Field(default_factory=Demographics)
    guards: Guards = Field(default_factory=Guards)
    limits: Limits = Field(default_factory=Limits)
    # a pair scoring this or less (fraction of compared fields agreeing) is never reviewed
    review_floor: float = Field(0.0, ge=0.0, le=1.0)

    @property
    def card_systems(self) -> dict[str, str]:
        return {c.system: c.name for c in self.identifiers.cards}


DEFAULT_RULES_FILE = Path(__file__).parents[1] / "data" / "matching-rules.yaml"


def load_rules(path: Path) -> MatchingRules:
    """Read and check a rules file; ``ConfigError`` names the file, line and key."""
    data, index = read_config(path, "the matching rules file")
    try:
        return MatchingRules.model_validate(data)
    except ValidationError as exc:
        raise located(path, index, *first_problem(exc)) from None


@lru_cache(maxsize=16)
def rules_at(path: str | None) -> MatchingRules:
    """The rules of a file (the packaged default for None), read once per process."""
    return load_rules(Path(path) if path else DEFAULT_RULES_FILE)
