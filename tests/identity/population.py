"""A generated, labelled test population for the patient index (seeded: the same seed gives
the same records on every machine). Nothing generated is committed; this script is.

    python tests/identity/population.py --persons 10000 --seed 7 > population.jsonl

Each line is one facility's Patient record (FHIR JSON) with its labels:
``{"facility": ..., "person": <true person>, "family": <household>, "twin": bool,
"kinds": [...what was done to it], "patient": {...}}``. Persons are made first, then each
is registered at 1-3 of the 3 facilities, each registration with the faults real feeds
have (rates in ``RATES``): a missing or 15-digit national ID, a mistyped ID (bad check
character), a same-sound character in the name (王芳 -> 王方), another typo, a rare
character typed as ``?`` or a private-use code point, a changed or missing phone or
address, a health card or not, a child registered under a parent's ID, 无名氏 in the
emergency room. Twins share surname, birth date, address and phone, and their given
names differ by one character (sometimes only in sound: 王方 / 王芳).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from adapter.identity.national_id import national_id_check_char

FACILITIES = ("qingshan-county-hospital", "shiqiao-township-centre", "liuhe-township-centre")
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤单乐解仇"
)
COMPOUND = ("欧阳", "司马", "诸葛", "上官")
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红建文辉力鹏宇浩凯俊晨欣怡婷雪琳梅"
    "波斌宁峰飞丹龙云亮林国春燕海鑫晶倩莉慧颖佳嘉子涵轩博睿一诗思雨梓萱欢志永德福荣桃菊凤"
)
# same sound, other character: the classic homophone typos (and twins' names)
HOMOPHONES = {
    "芳": "方", "方": "芳", "伟": "卫", "丽": "莉", "莉": "丽", "静": "靜", "敏": "民",
    "华": "桦", "英": "瑛", "红": "虹", "玉": "钰", "兰": "岚", "平": "萍", "萍": "平",
    "军": "君", "强": "蔷", "明": "鸣", "杰": "洁", "娟": "鹃", "涛": "韬", "文": "雯",
    "燕": "艳", "艳": "燕", "霞": "侠", "晶": "菁", "海": "亥", "春": "椿", "梅": "玫",
}  # fmt: skip
RARE = "䶮𬱖𬌗𠇔喆犇淼燚堃昇"  # 生僻字 a feed may not carry
TOWNS = (
    "石桥镇", "六合乡", "观音镇", "白沙镇", "青峰乡", "龙潭镇", "桃源镇", "新市镇", "柳林乡",
    "黄土镇", "金塘乡", "南山镇", "东溪乡", "河口镇", "双江镇",
)  # fmt: skip
AREA_CODES = ("430999", "430998", "430921")

# per registration unless said otherwise; --faults scales the fault rates (keys in FAULTS)
RATES = {
    "registrations": (0.40, 0.35, 0.25),  # at 1, 2, 3 facilities
    "twins": 0.02,
    "health_card": 0.6,
    "card_recorded": 0.7,
    "rare_name": 0.02,  # persons with a rare character in the given name
    "rare_typed": 0.3,  # of their registrations: a placeholder typed instead
    "no_id": 0.015,
    "id_15": 0.05,  # persons born before 2000 only
    "id_typo": 0.005,
    "name_homophone": 0.02,
    "name_typo": 0.005,
    "name_rare": 0.005,
    "birth_typo": 0.003,
    "phone_changed": 0.10,
    "phone_missing": 0.08,
    "address_missing": 0.08,
    "parent_id": 0.003,
    "unknown": 0.002,
}


FAULTS = (
    "no_id", "id_15", "id_typo", "name_homophone", "name_typo", "name_rare", "birth_typo",
    "phone_changed", "phone_missing", "address_missing", "parent_id", "unknown", "rare_typed",
)  # fmt: skip


def scaled(faults: float) -> dict[str, Any]:
    return {k: (min(1.0, v * faults) if k in FAULTS else v) for k, v in RATES.items()}


@dataclass
class Person:
    label: str
    family: str
    surname: str
    given: str
    birth: date
    sex: str
    nid: str
    phone: str
    town: str
    village: str
    card: str | None
    twin: bool = False
    registrations: list[str] = field(default_factory=list)


def _nid(rng: random.Random, birth: date, sex: str) -> str:
    sequence = rng.randrange(0, 500) * 2 + (1 if sex == "male" else 0)
    first17 = rng.choice(AREA_CODES) + birth.strftime("%Y%m%d") + f"{sequence:03d}"
    return first17 + national_id_check_char(first17)


def _given(rng: random.Random) -> str:
    return "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2, 2))))


def make_persons(count: int, seed: int) -> list[Person]:
    rng = random.Random(seed)
    persons: list[Person] = []
    start = date(1930, 1, 1)
    while len(persons) < count:
        surname = rng.choice(COMPOUND) if rng.random() < 0.01 else rng.choice(SURNAMES)
        birth = start + timedelta(days=rng.randrange(0, 95 * 365))
        sex = rng.choice(("male", "female"))
        label = f"P{len(persons):06d}"
        given = _given(rng)
        if rng.random() < RATES["rare_name"]:
            given = rng.choice(RARE) + given[1:]  # a 生僻字 in the name
        person = Person(
            label=label,
            family=label,
            surname=surname,
            given=given,
            birth=birth,
            sex=sex,
            nid=_nid(rng, birth, sex),
            phone=f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
            town=rng.choice(TOWNS),
            village=f"{rng.choice(GIVEN)}{rng.choice('家庄湾坪冲')}村{rng.randrange(1, 12)}组",
            card=f"JK{rng.randrange(10**13):013d}" if rng.random() < RATES["health_card"] else None,
        )
        persons.append(person)
        if rng.random() < RATES["twins"] and len(persons) < count:
            given = list(person.given)
            pos = rng.randrange(len(given))
            if given[pos] in HOMOPHONES and rng.random() < 0.5:
                given[pos] = HOMOPHONES[given[pos]]  # 王芳 and 王方
            else:
                given[pos] = rng.choice([g for g in GIVEN if g != given[pos]])
            twin_sex = rng.choice(("male", "female"))
            twin = Person(
                label=f"P{len(persons):06d}",
                family=person.family,
                surname=surname,
                given="".join(given),
                birth=birth,
                sex=twin_sex,
                nid=_nid(rng, birth, twin_sex),
                phone=person.phone,
                town=person.town,
                village=person.village,
                card=None,
                twin=True,
            )
            person.twin = True
            persons.append(twin)
    for person in persons:
        weights = RATES["registrations"]
        k = rng.choices((1, 2, 3), weights=weights)[0]
        person.registrations = rng.sample(FACILITIES, k)
    return persons


def _typo(rng: random.Random, text: str, kinds: list[str], RATES: dict[str, Any]) -> str:
    chars = list(text)
    roll = rng.random()
    given_positions = list(range(1, len(chars))) or [0]
    if roll < RATES["name_homophone"]:
        options = [i for i in given_positions if chars[i] in HOMOPHONES]
        if options:
            i = rng.choice(options)
            chars[i] = HOMOPHONES[chars[i]]
            kinds.append("name-homophone")
    elif roll < RATES["name_homophone"] + RATES["name_typo"]:
        i = rng.choice(given_positions)
        chars[i] = rng.choice([g for g in GIVEN if g != chars[i]])
        kinds.append("name-typo")
    elif roll < RATES["name_homophone"] + RATES["name_typo"] + RATES["name_rare"]:
        i = rng.choice(given_positions)
        chars[i] = rng.choice(("?", "\ue000", "□"))
        kinds.append("name-placeholder")
    return "".join(chars)


def records(persons: list[Person], seed: int, faults: float = 1.0) -> list[dict[str, Any]]:
    rng = random.Random(seed + 1)
    RATES = scaled(faults)
    out: list[dict[str, Any]] = []
    for person in persons:
        for facility in person.registrations:
            kinds: list[str] = []
            name = person.surname + person.given
            if any(ch in RARE for ch in person.given) and rng.random() < RATES["rare_typed"]:
                # a system that cannot store the rare character types a stand-in
                name = "".join(rng.choice("?□\ue000") if ch in RARE else ch for ch in name)
                kinds.append("rare-placeholder")
            else:
                name = _typo(rng, name, kinds, RATES)
            birth = person.birth
            if rng.random() < RATES["birth_typo"]:
                birth = birth + timedelta(days=rng.choice((-1, 1, 10, 31)))
                kinds.append("birth-typo")
            identifiers: list[dict[str, str]] = [
                {
                    "system": f"https://qingshan.example.cn/fhir/sid/{facility}/patient",
                    "value": f"{facility[:2].upper()}{rng.randrange(10**8):08d}",
                }
            ]
            nid: str | None = person.nid
            roll = rng.random()
            if roll < RATES["no_id"]:
                nid = None
                kinds.append("no-id")
            elif roll < RATES["no_id"] + RATES["id_typo"]:
                i = rng.randrange(17)
                nid = nid[:i] + str((int(nid[i]) + rng.randrange(1, 10)) % 10) + nid[i + 1 :]
                kinds.append("id-typo")
            elif roll < RATES["no_id"] + RATES["id_typo"] + RATES["parent_id"]:
                nid = None  # filled below with another (older) person's number
                kinds.append("parent-id")
            elif person.birth.year < 2000 and roll < sum(
                RATES[k] for k in ("no_id", "id_typo", "parent_id", "id_15")
            ):
                nid = person.nid[:6] + person.nid[8:17]
                kinds.append("id-15")
            if "parent-id" in kinds:
                parent = persons[rng.randrange(len(persons))]
                if parent.label != person.label:
                    nid = parent.nid
                else:
                    kinds.remove("parent-id")
                    nid = person.nid
            if nid:
                identifiers.append({"system": "urn:oid:2.16.156.10011.1.3", "value": nid})
            if person.card and rng.random() < RATES["card_recorded"]:
                identifiers.append({"system": "urn:oid:2.16.156.10011.1.19", "value": person.card})
            patient: dict[str, Any] = {
                "resourceType": "Patient",
                "id": f"{facility[:8]}-{person.label}",
                "identifier": identifiers,
                "name": [{"use": "official", "text": name, "family": name[: len(person.surname)]}],
                "gender": person.sex,
                "birthDate": birth.isoformat(),
            }
            phone_roll = rng.random()
            if phone_roll < RATES["phone_missing"]:
                kinds.append("no-phone")
            else:
                phone = person.phone
                if phone_roll < RATES["phone_missing"] + RATES["phone_changed"]:
                    phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
                    kinds.append("phone-changed")
                patient["telecom"] = [{"system": "phone", "value": phone}]
            if rng.random() < RATES["address_missing"]:
                kinds.append("no-address")
            else:
                patient["address"] = [{"text": f"湖南省青山县{person.town}{person.village}"}]
            if rng.random() < RATES["unknown"]:
                patient["name"] = [{"use": "official", "text": "无名氏"}]
                patient["identifier"] = identifiers[:1]
                patient.pop("telecom", None)
                kinds.append("unknown")
            out.append(
                {
                    "facility": facility,
                    "person": person.label,
                    "family": person.family,
                    "twin": person.twin,
                    "kinds": kinds,
                    "patient": patient,
                }
            )
    rng.shuffle(out)  # the feeds interleave
    return out


def population(persons: int, seed: int, faults: float = 1.0) -> list[dict[str, Any]]:
    return records(make_persons(persons, seed), seed, faults)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", type=float, default=1.0, help="scale the fault rates")
    args = parser.parse_args(argv)
    for item in population(args.persons, args.seed, args.faults):
        sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()


# -- scoring (the benchmark and the test share it) ----------------------------------------


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def score(
    items: list[dict[str, Any]], links: dict[str, str], review_pairs: list[tuple[str, str]]
) -> dict[str, float]:
    """Figures of one run. ``links``: record id -> person id as the index left them;
    ``review_pairs``: the record pairs of the open review items.

    ``recall`` counts automatic links only; ``recall_with_review`` also counts a true pair
    whose two persons a review item connects (the index found it; a reviewer decides)."""
    reviewed = {r for pair in review_pairs for r in pair}
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in review_pairs:
        ra, rb = root(links.get(a, a)), root(links.get(b, b))
        if ra != rb:
            parent[ra] = rb
    label = {i["patient"]["id"]: i["person"] for i in items}
    family = {i["patient"]["id"]: i["family"] for i in items}
    clusters: dict[str, list[str]] = {}
    for record, person in links.items():
        clusters.setdefault(person, []).append(record)
    linked = true_linked = twin_false = 0
    for members in clusters.values():
        linked += pairs(len(members))
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                a, b = members[x], members[y]
                if label[a] == label[b]:
                    true_linked += 1
                elif family[a] == family[b]:
                    twin_false += 1
    by_person: dict[str, int] = {}
    for i in items:
        by_person[i["person"]] = by_person.get(i["person"], 0) + 1
    true_pairs = sum(pairs(n) for n in by_person.values())
    surfaced = 0
    grouped: dict[str, list[str]] = {}
    for i in items:
        grouped.setdefault(i["person"], []).append(i["patient"]["id"])
    for members in grouped.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                pa, pb = links.get(members[x]), links.get(members[y])
                if pa and pb and root(pa) == root(pb):
                    surfaced += 1
    return {
        "records": len(items),
        "persons": len(by_person),
        "linked_pairs": linked,
        "true_pairs": true_pairs,
        "precision": true_linked / linked if linked else 1.0,
        "recall": true_linked / true_pairs if true_pairs else 1.0,
        "recall_with_review": surfaced / true_pairs if true_pairs else 1.0,
        "false_links": linked - true_linked,
        "twin_false_links": twin_false,
        "review_share": len(reviewed) / len(items) if items else 0.0,
    }
