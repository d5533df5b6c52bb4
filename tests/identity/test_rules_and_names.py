"""The matching rules file (checked with file:line errors), names (pinyin, surnames,
placeholders) and the matcher's tiers and guards, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.consortium import load_consortium
from adapter.errors import ConfigError
from adapter.identity.features import features_of, national_id_warnings
from adapter.identity.matcher import classify, one_slip_apart
from adapter.identity.names import compare_names, parse_name, surname_keys
from adapter.identity.rules import load_rules, rules_at
from tests.identity.hl7 import national_id

ROOT = Path(__file__).resolve().parents[2]
NID_OID = "urn:oid:2.16.156.10011.1.3"
RULES = rules_at(None)


def test_the_example_rules_load_and_a_mistake_names_file_and_line(tmp_path: Path) -> None:
    assert load_rules(ROOT / "fixtures" / "matching-rules.yaml").version == 2
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "version: 2\nkind: matching-rules\nhard_key:\n  outcome: maybe\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_rules(bad)
    assert f"{bad}:4" in str(caught.value) and "hard_key.outcome" in str(caught.value)
    bad.write_text("version: 0\nkind: matching-rules\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rules.yaml:1"):
        load_rules(bad)


def test_the_consortium_names_its_rules_file(tmp_path: Path) -> None:
    text = (ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8")
    config = tmp_path / "consortium.yaml"
    config.write_text(
        text.replace(
            "  publish_persons: false", "  matching_rules: r.yaml\n  publish_persons: false"
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="not found"):
        load_consortium(config)
    (tmp_path / "r.yaml").write_text(
        "version: 3\nkind: matching-rules\nguards: {twins: yes, x: 1}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_consortium(config)
    assert "r.yaml:3" in str(caught.value)
    (tmp_path / "r.yaml").write_text("version: 3\nkind: matching-rules\n", encoding="utf-8")
    loaded = load_consortium(config)
    assert rules_at(loaded.patient_index.matching_rules).version == 3


def test_names_surnames_and_same_sound() -> None:
    assert surname_keys(parse_name("单田芳")) == ["shan"]  # 单 as a surname is shàn
    assert surname_keys(parse_name("欧阳修")) == ["ouyang"]
    same = compare_names(parse_name("王芳"), parse_name("王方"))
    assert same.same_sound and same.sound_differences == 1 and not same.equal
    brothers = compare_names(parse_name("蒋经国"), parse_name("蒋纬国"))
    assert not brothers.same_sound and brothers.differences == 1
    rare = compare_names(parse_name("李?"), parse_name("李\ue000"))
    assert rare.wildcards == 1
    assert parse_name("无名氏").unknown


def _patient(pid: str, name: str, birth: str, sex: str, **extra) -> dict:
    body = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"text": name}],
        "birthDate": birth,
        "gender": sex,
    }
    ids = []
    if extra.get("nid"):
        ids.append({"system": NID_OID, "value": extra["nid"]})
    if extra.get("card"):
        ids.append({"system": "urn:oid:2.16.156.10011.1.19", "value": extra["card"]})
    body["identifier"] = ids
    body["telecom"] = [{"system": "phone", "value": extra.get("phone", "13800000000")}]
    body["address"] = [{"text": "青山县石桥镇观音村"}]
    return body


def _classify(a: dict, b: dict):
    return classify(features_of(a, "f1", RULES), features_of(b, "f2", RULES), RULES)


NID = national_id("430999", "19800101", "022")  # a woman born 1980-01-01


def test_tiers_and_guards() -> None:
    w = _patient("a", "王芳", "1980-01-01", "female", nid=NID)
    assert _classify(w, _patient("b", "王方", "1980-01-01", "female", nid=NID)).rule == "hard-key"
    # the 15-digit form of the same number is the same key
    fifteen = NID[:6] + NID[8:17]
    assert (
        _classify(w, _patient("b", "王芳", "1980-01-01", "female", nid=fifteen)).outcome == "match"
    )
    conflict = _classify(w, _patient("b", "李小宝", "2020-05-05", "male", nid=NID))
    assert (conflict.outcome, conflict.reason) == ("review", "id-conflict")
    typo = _classify(w, _patient("b", "王芬", "1980-01-01", "female", nid=NID))
    assert typo.outcome == "review"
    # an invalid checksum is evidence only, never a key
    bad = NID[:17] + ("0" if NID[17] != "0" else "1")
    weak = _classify(
        _patient("a", "王芳", "1980-01-01", "female", nid=bad),
        _patient("b", "张伟", "1980-01-01", "female", nid=bad),
    )
    assert weak.outcome == "none"
    # an identifier with an empty value never matches
    empty = _classify(
        _patient("a", "王芳", "1980-01-01", "female", card=" "),
        _patient("b", "李四", "1970-01-01", "male", card=" "),
    )
    assert empty.outcome == "none" and empty.evidence["card"] == "missing"
    # card key: name and birth date equal
    card = _classify(
        _patient("a", "王芳", "1980-01-01", "female", card="JK1"),
        _patient("b", "王芳", "1980-01-01", "female", card="JK1"),
    )
    assert card.rule == "card-key" and card.outcome == "match"
    # demographics only: review, never a link
    demo = _classify(
        _patient("a", "王芳", "1980-01-01", "female"), _patient("b", "王芳", "1980-01-01", "female")
    )
    assert (demo.outcome, demo.rule) == ("review", "demographics")
    # twins: one character apart, same household: never linked (here not even reviewed)
    twins = _classify(
        _patient("a", "王芳", "1980-01-01", "female"), _patient("b", "王芬", "1980-01-01", "female")
    )
    assert twins.outcome == "none"
    sound_twins = _classify(
        _patient("a", "王芳", "1980-01-01", "female", card="JKT"),
        _patient("b", "王方", "1980-01-01", "female", card="JKT"),
    )
    assert sound_twins.outcome == "review"
    # placeholders and unknown patients are kept out of automatic matching
    assert (
        _classify(
            _patient("a", "无名氏", "1980-01-01", "female"),
            _patient("b", "无名氏", "1980-01-01", "female"),
        ).outcome
        == "none"
    )
    rare = _classify(
        _patient("a", "王?", "1980-01-01", "female", card="JK2"),
        _patient("b", "王芳", "1980-01-01", "female", card="JK2"),
    )
    assert rare.outcome == "review"
    # ... but the national ID still links a rare character typed as a placeholder
    assert _classify(_patient("a", "王?", "1980-01-01", "female", nid=NID), w).outcome == "match"


def test_an_invalid_id_one_slip_from_a_valid_one_is_evidence_with_the_demographics() -> None:
    w = _patient("a", "王芳", "1980-01-01", "female", nid=NID)
    slip = NID[:14] + str((int(NID[14]) + 3) % 10) + NID[15:]  # one digit mistyped
    swapped = NID[:7] + NID[8] + NID[7] + NID[9:]  # 1980 typed 1890
    assert one_slip_apart(slip, NID) and one_slip_apart(swapped, NID)
    assert one_slip_apart(NID[:6] + NID[8:14] + "9" + NID[15:17], NID)  # a 15-digit one
    assert not one_slip_apart(NID, NID) and not one_slip_apart(slip[:16] + "77", NID)
    other_phone = {"phone": "13900000000"}
    near = _classify(_patient("b", "王芳", "1980-01-01", "female", nid=slip, **other_phone), w)
    assert (near.outcome, near.rule) == ("match", "near-id")
    # not without the name, the birth date and the sex of the hard key
    assert _classify(_patient("b", "王芬", "1980-01-01", "female", nid=slip), w).rule != "near-id"
    assert _classify(_patient("b", "王芳", "1980-01-02", "female", nid=slip), w).rule != "near-id"
    assert _classify(_patient("b", "王?", "1980-01-01", "female", nid=slip), w).rule != "near-id"
    # two slips away: demographics only (review)
    far = slip[:3] + str((int(slip[3]) + 1) % 10) + slip[4:]
    assert _classify(_patient("b", "王芳", "1980-01-01", "female", nid=far), w).outcome == "review"
    # off unless the rules file names an outcome
    off = RULES.model_copy(update={"near_id": RULES.near_id.model_copy(update={"outcome": "none"})})
    a = features_of(_patient("b", "王芳", "1980-01-01", "female", nid=slip), "f1", off)
    assert classify(a, features_of(w, "f2", off), off).rule != "near-id"


def test_national_id_against_the_record() -> None:
    ok = _patient("a", "王芳", "1980-01-01", "female", nid=NID)
    assert national_id_warnings(ok, NID_OID) == []
    wrong = _patient("a", "王芳", "1981-01-01", "male", nid=NID)
    found = national_id_warnings(wrong, NID_OID)
    assert len(found) == 2 and all(NID not in f and "1981" not in f for f in found)
