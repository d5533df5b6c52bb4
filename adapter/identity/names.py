"""Chinese personal names for matching: placeholders, surname split, pinyin readings.

Edit distance says little about 2-4 character Han names (王方 / 王芳 sound the same, 蒋经国
/ 蒋纬国 are brothers), so names are compared character by character: equal, or the same
sound (the sets of pinyin readings overlap), or different. The surname is read as a surname
(单 is shàn, 曾 is zēng, 乐 is yuè), the given name with every heteronym reading (pypinyin).
Placeholders typed for a character the system cannot store (``?``, ``*``, ``□``, a
private-use code point) are wildcards; 无名氏 / 急诊未知 and the like name nobody.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

PLACEHOLDER_CHARS = frozenset("?？*＊□■〇○_＿")
UNKNOWN_NAMES = frozenset(
    {"无名氏", "无名", "急诊未知", "未知", "不详", "无", "匿名", "某某", "无名男", "无名女"}
)
COMPOUND_SURNAMES = frozenset(
    [
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "令狐",
        "万俟",
        "澹台",
        "轩辕",
        "呼延",
        "端木",
        "南宫",
        "西门",
        "独孤",
        "钟离",
        "闻人",
        "申屠",
        "百里",
        "东郭",
        "公羊",
    ]
)
# surnames whose surname reading differs from (or is one of several) common readings
SURNAME_READINGS = {
    "单": "shan", "曾": "zeng", "乐": "yue", "解": "xie", "仇": "qiu", "朴": "piao",
    "查": "zha", "区": "ou", "盖": "ge", "覃": "qin", "缪": "miao", "翟": "zhai", "葛": "ge",
    "任": "ren", "华": "hua", "纪": "ji", "召": "shao", "秘": "bi", "种": "chong", "员": "yun",
    "尉": "wei", "重": "chong", "繁": "po", "黑": "he", "朝": "chao", "长": "chang",
    "沈": "shen", "折": "she", "阚": "kan", "厍": "she", "那": "na", "宁": "ning", "柏": "bai",
    "隗": "wei", "逄": "pang", "洗": "xian", "冼": "xian", "燕": "yan", "于": "yu", "石": "shi",
}  # fmt: skip


def is_private_use(ch: str) -> bool:
    return unicodedata.category(ch) == "Co"


def is_placeholder(ch: str) -> bool:
    return ch in PLACEHOLDER_CHARS or is_private_use(ch)


def clean_name(text: str | None) -> str:
    """NFKC (full-width letters made ASCII), spaces and the middle dot of transliterated
    names removed."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if not ch.isspace() and ch not in "·•・.")


@dataclass(frozen=True, slots=True)
class Name:
    text: str  # cleaned
    surname_len: int  # characters of text that are the surname (0 when not Han)

    @property
    def surname(self) -> str:
        return self.text[: self.surname_len]

    @property
    def given(self) -> str:
        return self.text[self.surname_len :]

    @property
    def unknown(self) -> bool:
        return not self.text or self.text in UNKNOWN_NAMES

    @property
    def has_placeholder(self) -> bool:
        return any(is_placeholder(ch) for ch in self.text)

    @property
    def han(self) -> bool:
        return bool(self.text) and all(_is_han(ch) or is_placeholder(ch) for ch in self.text)


def _is_han(ch: str) -> bool:
    return "CJK" in unicodedata.name(ch, "")


def parse_name(text: str | None, family: str | None = None) -> Name:
    cleaned = clean_name(text)
    fam = clean_name(family)
    if fam and cleaned.startswith(fam) and len(fam) < len(cleaned):
        return Name(cleaned, len(fam))
    if len(cleaned) >= 3 and cleaned[:2] in COMPOUND_SURNAMES:
        return Name(cleaned, 2)
    return Name(cleaned, 1 if len(cleaned) >= 2 and _is_han(cleaned[0]) else 0)


@lru_cache(maxsize=65536)
def readings(ch: str, as_surname: bool) -> frozenset[str]:
    """The pinyin readings of one character (toneless); a surname gets its surname reading."""
    if is_placeholder(ch):
        return frozenset()
    if as_surname and ch in SURNAME_READINGS:
        return frozenset({SURNAME_READINGS[ch]})
    if not _is_han(ch):
        return frozenset({ch.lower()})
    # imported on first use: its phrase tables take ~130 MB and 0.6 s, which a process that
    # only translates (a translation worker, decision 0054) never needs
    from pypinyin import Style, pinyin

    # a surname outside the table: its usual reading (pypinyin's first); a given name: all
    read = pinyin(ch, style=Style.NORMAL, heteronym=not as_surname, errors="ignore")
    found = frozenset(r for group in read for r in group if r)
    return found or frozenset({ch})  # a rare character pypinyin does not know: itself


def name_readings(name: Name) -> list[frozenset[str]]:
    return [readings(ch, i < name.surname_len) for i, ch in enumerate(name.text)]


def surname_keys(name: Name) -> list[str]:
    """Blocking keys from the surname's readings (one per reading, usually one)."""
    if not name.surname_len or name.unknown:
        return []
    per_char = [sorted(readings(ch, True)) for ch in name.surname]
    if any(not r for r in per_char):
        return []
    keys = [""]
    for options in per_char:
        keys = [k + o for k in keys for o in options]
    return keys


@dataclass(frozen=True, slots=True)
class NameComparison:
    """How two names relate, position by position."""

    equal: bool  # same characters
    same_sound: bool  # every position equal or sharing a reading (or a wildcard)
    sound_differences: int  # positions with different characters but the same sound
    differences: int  # positions with different characters and no shared sound
    wildcards: int  # positions where either side is a placeholder
    same_surname: bool
    common: int  # positions with the same character

    @property
    def nothing_in_common(self) -> bool:
        return self.common == 0 and self.sound_differences == 0 and self.wildcards == 0


def compare_names(a: Name, b: Name) -> NameComparison:
    same_surname = bool(a.surname) and a.surname == b.surname
    if a.text == b.text:
        n = len(a.text)
        return NameComparison(True, True, 0, 0, 0, same_surname, n)
    if len(a.text) != len(b.text):
        shared = len(set(a.text) & set(b.text))
        return NameComparison(
            False, False, 0, max(len(a.text), len(b.text)), 0, same_surname, shared
        )
    ra, rb = name_readings(a), name_readings(b)
    sound = diff = wild = common = 0
    for i, (ca, cb) in enumerate(zip(a.text, b.text, strict=True)):
        if ca == cb:
            common += 1
        elif is_placeholder(ca) or is_placeholder(cb):
            wild += 1
        elif ra[i] & rb[i]:
            sound += 1
        else:
            diff += 1
    return NameComparison(False, diff == 0, sound, diff, wild, same_surname, common)
