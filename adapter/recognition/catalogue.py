"""The recognition catalogue (互认项目目录) and the facilities' qualifications, as data.

Which items are recognised, for how long, in which area, with which mark, and which
laboratories passed external quality assessment (室间质评) are provincial choices: they live
in a versioned YAML file beside the consortium file (``recognition.yaml``), checked at
start-up like the consortium file, every mistake named with file, line and key.
docs/recognition.md describes the file; docs/decisions/0027-recognition.md the choices.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapter.config_file import first_problem, located, read_config
from adapter.consortium import Consortium

KeyPath = tuple[str | int, ...]
Problem = tuple[KeyPath, str]

SETTINGS = ("outpatient", "inpatient", "emergency", "physical-exam")


class Kind(StrEnum):
    lab = "lab"  # 检验
    exam = "exam"  # 检查


class Scope(StrEnum):
    """Areas of recognition, narrowest first."""

    consortium = "consortium"  # 医共体内
    city = "city"  # 市域
    province = "province"  # 省域


_KIND_NAMES = {"检验": "lab", "检查": "exam"}
_SCOPE_NAMES = {"医共体": "consortium", "市域": "city", "省域": "province"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Item(Strict):
    """One recognised item: what it is, how to find its results, how long they count."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^\S+$")
    name: str = Field(min_length=1)
    kind: Kind
    group: str | None = None  # 专业组 (临床血液, 临床化学, 放射...), as qualifications name it
    loinc: list[str] = Field(default_factory=list)
    # facility id -> that facility's own item codes (LIS / RIS dictionary)
    local: dict[str, list[str]] = Field(default_factory=dict)
    # days, or per care setting: {outpatient: 7, inpatient: 3, default: 7}
    validity_days: int | dict[str, int]
    scope: Scope = Scope.consortium
    mark: str = Field("HR", min_length=1, max_length=16)
    # data: only the measured values / images; result: the report's findings too.
    # The physician's conclusion (诊断意见) is never recognised.
    recognises: Literal["data", "result"] = "data"
    # where the catalogue says it matters: the specimen types (codes of Specimen.type, e.g.
    # HL7 v2-0487 SER, PLAS) and methods (codes of Observation.method) a result must have
    specimen: list[str] = Field(default_factory=list)
    method: list[str] = Field(default_factory=list)
    # the price of the test in yuan (the local price list), for the cost avoided
    price: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=2)

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_by_name(cls, value: Any) -> Any:
        return _KIND_NAMES.get(value, value) if isinstance(value, str) else value

    @field_validator("scope", mode="before")
    @classmethod
    def _scope_by_name(cls, value: Any) -> Any:
        return _SCOPE_NAMES.get(value, value) if isinstance(value, str) else value

    @field_validator("loinc", mode="before")
    @classmethod
    def _loinc_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("local", mode="before")
    @classmethod
    def _local_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str | int) else v for k, v in value.items()}
        return value

    @field_validator("local", mode="after")
    @classmethod
    def _local_text(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k: [str(c) for c in v] for k, v in value.items()}

    @field_validator("validity_days", mode="after")
    @classmethod
    def _positive_days(cls, value: int | dict[str, int]) -> int | dict[str, int]:
        days = value.values() if isinstance(value, dict) else [value]
        if any(d < 1 for d in days):
            raise ValueError("validity days must be 1 or more")
        if isinstance(value, dict):
            unknown = sorted(set(value) - {*SETTINGS, "default"})
            if unknown:
                raise ValueError(
                    f"unknown care setting {unknown[0]!r}; one of: {', '.join(SETTINGS)}, default"
                )
            if not value:
                raise ValueError("give the days, or days per care setting")
        return value

    def days_for(self, setting: str) -> int:
        """Validity in days for a care setting; the shortest one when the setting has none
        and there is no ``default`` (never recognise longer than the file allows)."""
        if isinstance(self.validity_days, int):
            return self.validity_days
        if setting in self.validity_days:
            return self.validity_days[setting]
        return self.validity_days.get("default", min(self.validity_days.values()))


class Assessment(Strict):
    """One EQA round (室间质评) or, for exams, quality-control assessment of a facility."""

    items: list[str] = Field(default_factory=list)  # item codes
    groups: list[str] = Field(default_factory=list)  # or whole groups
    programme: str = Field(min_length=1)  # who assessed: 省临床检验中心 2026 年第 1 次
    result: Literal["pass", "fail"]
    date: dt.date
    valid_until: dt.date


class Qualification(Strict):
    facility: str
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.consortium])
    eqa: list[Assessment] = Field(default_factory=list)

    @field_validator("scopes", mode="before")
    @classmethod
    def _scopes_by_name(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_SCOPE_NAMES.get(v, v) if isinstance(v, str) else v for v in value]
        return value


class Reason(Strict):
    """A reason for not recognising (不予互认理由), national or provincial."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-\.]+$")
    display: str = Field(min_length=1)
    source: Literal["national", "provincial"] = "national"
    needs_text: bool = False  # "other": the doctor must write why
    patient_text: str | None = None  # what the patient is told


class Catalogue(Strict):
    version: Literal[1] = 1
    kind: Literal["recognition-catalogue"]
    edition: str = Field(min_length=1, max_length=64)  # recorded with every decision
    effective: dt.date
    description: str | None = None
    # the stored results recognisable when issued carry the item's mark in meta.tag
    # (adapter/recognition/marks.py); false: only the $recognisable answers show it
    mark_results: bool = True
    # which identifier kind of a facility holds its local item codes (Facility.identifier_system)
    local_code_systems: dict[Kind, str] = Field(
        default_factory=lambda: {Kind.lab: "lab-item", Kind.exam: "exam-item"}
    )
    items: list[Item]
    qualifications: list[Qualification] = Field(default_factory=list)
    reasons: list[Reason]

    # -- checks across entries ------------------------------------------------------------
    def problems(self, facility_ids: set[str] | None) -> list[Problem]:
        """Codes used twice, local or LOINC codes claimed by two items, unknown items,
        groups or facilities, date ranges backwards, each with the key path of the value."""
        found: list[Problem] = []
        codes: dict[str, int] = {}
        groups: set[str] = set()
        claimed: dict[tuple[str, str], str] = {}
        loincs: dict[str, str] = {}
        for n, item in enumerate(self.items):
            if item.code in codes:
                found.append((("items", n, "code"), f"item code {item.code!r} is used twice"))
            codes[item.code] = n
            for loinc in item.loinc:
                other = loincs.setdefault(loinc, item.code)
                if other != item.code:
                    found.append(
                        (("items", n, "loinc"), f"LOINC {loinc} is already item {other}'s")
                    )
            if item.group:
                groups.add(item.group)
            for facility, local_codes in item.local.items():
                if facility_ids is not None and facility not in facility_ids:
                    found.append(
                        (("items", n, "local", facility), f"unknown facility {facility!r}")
                    )
                for local in local_codes:
                    other = claimed.get((facility, local))
                    if other and other != item.code:
                        found.append(
                            (
                                ("items", n, "local", facility),
                                f"local code {local!r} of {facility} already maps to {other}",
                            )
                        )
                    claimed[(facility, local)] = item.code
        seen: set[str] = set()
        for n, qual in enumerate(self.qualifications):
            where: KeyPath = ("qualifications", n, "facility")
            if facility_ids is not None and qual.facility not in facility_ids:
                found.append((where, f"unknown facility {qual.facility!r}"))
            if qual.facility in seen:
                found.append((where, f"facility {qual.facility!r} is qualified twice"))
            seen.add(qual.facility)
            for a, assessment in enumerate(qual.eqa):
                base: KeyPath = ("qualifications", n, "eqa", a)
                if not assessment.items and not assessment.groups:
                    found.append((base, "name the items or groups this assessment covers"))
                for i, code in enumerate(assessment.items):
                    if code not in codes:
                        found.append(((*base, "items", i), f"unknown item {code!r}"))
                for g, group in enumerate(assessment.groups):
                    if group not in groups:
                        found.append(((*base, "groups", g), f"no item is in group {group!r}"))
                if assessment.valid_until < assessment.date:
                    found.append(((*base, "valid_until"), "valid_until is before date"))
        reason_codes: set[str] = set()
        for n, reason in enumerate(self.reasons):
            if reason.code in reason_codes:
                found.append((("reasons", n, "code"), f"reason {reason.code!r} is used twice"))
            reason_codes.add(reason.code)
        return found

    # -- look-ups -------------------------------------------------------------------------
    def item(self, code: str) -> Item | None:
        return next((i for i in self.items if i.code == code), None)

    def item_for_local(self, facility_id: str, local_code: str) -> Item | None:
        """The item a facility's own code stands for (its LIS / RIS dictionary)."""
        for item in self.items:
            if local_code in item.local.get(facility_id, ()):
                return item
        return None

    def item_for_loinc(self, loinc: str) -> Item | None:
        return next((i for i in self.items if loinc in i.loinc), None)

    def qualification(self, facility_id: str) -> Qualification | None:
        return next((q for q in self.qualifications if q.facility == facility_id), None)

    def reason(self, code: str) -> Reason | None:
        return next((r for r in self.reasons if r.code == code), None)


def load_catalogue(path: Path, facility_ids: set[str] | None = None) -> Catalogue:
    """Read and check a recognition catalogue; ``ConfigError`` naming file:line and key.
    ``facility_ids``: the consortium's facilities, which the file may name."""
    data, index = read_config(path, "the recognition catalogue")
    try:
        catalogue = Catalogue.model_validate(data)
    except ValidationError as exc:
        raise located(path, index, *first_problem(exc)) from None
    problems = catalogue.problems(facility_ids)
    if problems:
        key_path, message = problems[0]
        raise located(path, index, key_path, message)
    return catalogue


CATALOGUE_FILE = "recognition.yaml"


def load_configured_catalogue(
    chosen: Path | None, consortium_file: Path, consortium: Consortium
) -> Catalogue | None:
    """The catalogue the settings name, else ``recognition.yaml`` beside the consortium
    file; None (recognition off) when neither is set nor present."""
    path = chosen or consortium_file.parent / CATALOGUE_FILE
    if chosen is None and not path.is_file():
        return None
    return load_catalogue(path, {f.id for f in consortium.facilities})
