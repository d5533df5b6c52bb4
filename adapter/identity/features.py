"""What the index compares of a Patient record, read once from its FHIR JSON.

``Features`` is plain data (kept as JSON beside the link, so a candidate is compared without
reading its resource again). ``national_id_warnings`` is the check every Patient gets: the
birth date and sex written in the national ID against the record's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from adapter.identity.names import Name, parse_name, surname_keys
from adapter.identity.national_id import parse_national_id
from adapter.identity.rules import MatchingRules

_DIGITS = re.compile(r"\D")
# an address down to the township (乡 / 镇 / 街道 / 苏木): the key of "same place"
_TOWNSHIP = re.compile(r"^(.*?(?:镇|乡|街道|苏木|民族乡))")


@dataclass(slots=True)
class Features:
    record: str  # the Patient id
    facility: str
    name: str = ""
    surname_len: int = 0
    birth: str | None = None  # YYYY-MM-DD
    sex: str | None = None  # male / female (others: None)
    national_ids: list[str] = field(default_factory=list)  # usable keys: valid, 18-digit form
    weak_ids: list[str] = field(default_factory=list)  # invalid IDs: evidence only
    id_birth_sex_agree: bool = True  # every usable ID agrees with birth and sex
    cards: list[list[str]] = field(default_factory=list)  # [system, value]
    phones: list[str] = field(default_factory=list)
    township: str | None = None
    identifiers: list[dict[str, str]] = field(default_factory=list)  # as written (system, value)

    @property
    def parsed_name(self) -> Name:
        return Name(self.name, self.surname_len)

    def as_json(self) -> dict[str, Any]:
        """``dataclasses.asdict`` of it, written out: asdict's recursive deep copy was a
        tenth of the patient index's time in bulk ingest (decision 0050, amended)."""
        return {
            "record": self.record,
            "facility": self.facility,
            "name": self.name,
            "surname_len": self.surname_len,
            "birth": self.birth,
            "sex": self.sex,
            "national_ids": list(self.national_ids),
            "weak_ids": list(self.weak_ids),
            "id_birth_sex_agree": self.id_birth_sex_agree,
            "cards": [list(c) for c in self.cards],
            "phones": list(self.phones),
            "township": self.township,
            "identifiers": [dict(i) for i in self.identifiers],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Features:
        return cls(**{k: v for k, v in data.items() if k in cls.__slots__})  # type: ignore[attr-defined]

    def union(self, older: Features) -> Features:
        """This message's view of the record plus what earlier messages said of it (the
        stored record accumulates identifiers, telecom and addresses the same way)."""

        def merged(a: list[Any], b: list[Any]) -> list[Any]:
            return a + [x for x in b if x not in a]

        return Features(
            record=self.record,
            facility=self.facility,
            name=self.name or older.name,
            surname_len=self.surname_len if self.name else older.surname_len,
            birth=self.birth or older.birth,
            sex=self.sex or older.sex,
            national_ids=merged(self.national_ids, older.national_ids),
            weak_ids=merged(self.weak_ids, older.weak_ids),
            id_birth_sex_agree=self.id_birth_sex_agree,
            cards=merged(self.cards, older.cards),
            phones=merged(self.phones, older.phones),
            township=self.township or older.township,
            identifiers=merged(self.identifiers, older.identifiers),
        )

    def blocking_keys(self) -> list[str]:
        """Blocking keys: who may be compared with this record (OR'ed). Invalid IDs and
        empty values are never keys."""
        found = [f"nid|{v}" for v in self.national_ids]
        found += [f"card|{s}|{v}" for s, v in self.cards]
        if self.birth:
            found += [f"dob-surname|{self.birth}|{k}" for k in surname_keys(self.parsed_name)]
        return found


def features_of(patient: dict[str, Any], facility: str, rules: MatchingRules) -> Features:
    name_text, family = _official_name(patient)
    name = parse_name(name_text, family)
    birth = patient.get("birthDate")
    birth = birth[:10] if isinstance(birth, str) and len(birth) >= 10 else None  # a day
    sex = patient.get("gender") if patient.get("gender") in ("male", "female") else None
    out = Features(
        record=patient["id"],
        facility=facility,
        name=name.text,
        surname_len=name.surname_len,
        birth=birth,
        sex=sex,
    )
    card_systems = rules.card_systems
    for ident in _dicts(patient.get("identifier")):
        system = _text(ident.get("system"))
        value = _text(ident.get("value")).strip()
        if not value:
            continue  # an identifier with no value never matches anything
        pair = {"system": system, "value": value}
        if pair not in out.identifiers:
            out.identifiers.append(pair)
        if system == rules.identifiers.national_id:
            nid = parse_national_id(value)
            if nid.is_valid:
                key = nid.eighteen or nid.value
                if key not in out.national_ids:
                    out.national_ids.append(key)
                if (birth and nid.birth_date and nid.birth_date.isoformat() != birth) or (
                    sex and nid.sex and nid.sex != sex
                ):
                    out.id_birth_sex_agree = False
            elif value not in out.weak_ids:
                out.weak_ids.append(nid.value)
        elif system in card_systems:
            card = [system, value.upper()]
            if card not in out.cards:
                out.cards.append(card)
    for telecom in _dicts(patient.get("telecom")):
        if telecom.get("system") in (None, "phone", "sms"):
            digits = _DIGITS.sub("", _text(telecom.get("value")))
            if len(digits) >= 7:
                phone = digits[-11:]
                if phone not in out.phones:
                    out.phones.append(phone)
    for address in _dicts(patient.get("address")):
        text = _text(address.get("text")) or "".join(
            _text(address.get(k)) for k in ("state", "city", "district")
        ) + "".join(_text(x) for x in address.get("line") or [] if isinstance(x, str))
        found = _TOWNSHIP.match(text.replace(" ", ""))
        if found:
            out.township = found.group(1)
            break
    return out


def national_id_warnings(patient: dict[str, Any], national_id_system: str) -> list[str]:
    """What disagrees between each national ID and the record's birth date and sex (no
    number, name or date quoted: the text goes into issues and logs)."""
    birth = patient.get("birthDate")
    sex = patient.get("gender")
    found: list[str] = []
    seen: set[str] = set()
    for number, ident in enumerate(_dicts(patient.get("identifier"))):
        if ident.get("system") != national_id_system or not _text(ident.get("value")):
            continue
        nid = parse_national_id(ident["value"])
        key = nid.eighteen or nid.value
        if key in seen:
            continue  # a 15-digit number and its 18-digit form: one warning
        seen.add(key)
        dated = isinstance(birth, str) and len(birth) >= 10
        if nid.birth_date and dated and nid.birth_date.isoformat() != birth[:10]:
            found.append(
                f"identifier[{number}]: the birth date in the national ID differs from "
                "Patient.birthDate"
            )
        if nid.sex and sex in ("male", "female") and nid.sex != sex:
            found.append(
                f"identifier[{number}]: the sex in the national ID (sequence digit) differs "
                "from Patient.gender"
            )
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a list element (a malformed element is skipped, never a crash)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _official_name(patient: dict[str, Any]) -> tuple[str | None, str | None]:
    names = _dicts(patient.get("name"))
    chosen = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not chosen:
        return None, None
    given = "".join(g for g in chosen.get("given") or [] if isinstance(g, str))
    text = _text(chosen.get("text")) or _text(chosen.get("family")) + given
    return text, _text(chosen.get("family")) or None
