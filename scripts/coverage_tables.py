"""The coverage tables of the docs, measured on the golden cases with the mappings as they are:

* HL7 v2 message types x fields read (docs/adt-and-orders.md): every filled field of every
  golden HL7 v2 message (fixtures/hl7v2/*/cases.yaml, the malformed ``bad`` ones aside),
  per message type, as the mapping treated it;
* WS/T 500 documents x sections (docs/cda-mappings.md): every section of every golden
  WS/T 500 document (fixtures/cda/*/cases.yaml), its data elements with a value and what
  the Composition (or, for report documents, the report) made of it.

    .venv/bin/python scripts/coverage_tables.py            # print both tables
    .venv/bin/python scripts/coverage_tables.py --write    # rewrite them in the docs
    .venv/bin/python scripts/coverage_tables.py --check    # exit 1 when a docs table is stale

HL7 v2 cells: ``R`` read in every golden message that fills it; ``p`` read in part (a
repetition or component holding a value is reported unread in at least one golden, e.g.
an assigning authority ``PID-3.4``); ``u`` filled but read by no rule (reported: a warning
when clinical); ``-`` left out on purpose (the message mapping's ``ignore:``); blank: no
golden message of that type fills it. ``W`` marks a field with an unread-content warning.
The share of data elements carried into FHIR per document type is scripts/wst500_coverage.py.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapter.consortium import load_consortium  # noqa: E402
from adapter.hl7v2 import parse_hl7v2  # noqa: E402
from adapter.pipeline import Translator  # noqa: E402

V2_FOLDERS = ["oru", "oul", "exam", "adt", "orders", "referral"]
CDA_FOLDERS = ["lab", "exam", "discharge", "documents", "referral"]
V2_DOC = ROOT / "docs" / "adt-and-orders.md"
CDA_DOC = ROOT / "docs" / "cda-mappings.md"
V2_MARKS = ("<!-- v2-fields:start -->", "<!-- v2-fields:end -->")
CDA_MARKS = ("<!-- sections:start -->", "<!-- sections:end -->")
V3 = "{urn:hl7-org:v3}"
UNREAD = "not read by any mapping rule"
_PLACE = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})\[(?P<occ>\d+)\](?:-(?P<field>\d+)(?P<part>\[.*)?)?$"
)
_ORDER = {"R": 0, "p": 1, "u": 2, "-": 3}


def translator() -> Translator:
    made = Translator(
        load_consortium(ROOT / "fixtures" / "consortium.yaml"),
        mappings_dir=ROOT / "mappings",
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    made.load_all_mappings()
    return made


def cases(folder: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load((folder / "cases.yaml").read_text(encoding="utf-8"))
    return data["cases"] if isinstance(data, dict) else data


# -- HL7 v2 --------------------------------------------------------------------------------


def _field_key(name: str) -> tuple[str, int]:
    seg, _, number = name.partition("-")
    return seg, int(number)


def measure_v2(tr: Translator) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """message type -> {SEG-field: cell}, and the golden messages per type."""
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    warned: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for name in V2_FOLDERS:
        folder = ROOT / "fixtures" / "hl7v2" / name
        for case in cases(folder):
            raw = (folder / case["file"]).read_bytes()
            message = parse_hl7v2(raw)
            mtype = message.message_type()
            outcome = tr.translate(raw, case["source"])
            facility, source = tr.consortium.source(case["source"])  # type: ignore[misc]
            mapping = tr.mapping_set(facility, source).message_for("hl7v2", mtype)
            ignore = set(mapping.ignore) if mapping is not None else set()
            counts[mtype] += 1
            whole: set[tuple[str, int | None]] = set()
            partly: set[tuple[str, int]] = set()
            for issue in outcome.issues:
                match = _PLACE.match(issue.location or "") if UNREAD in issue.diagnostics else None
                if match is None:
                    continue
                place = (
                    match["seg"] + match["occ"],
                    int(match["field"]) if match["field"] else None,
                )
                (partly if match["part"] else whole).add(place)  # type: ignore[arg-type]
                if issue.severity == "warning":
                    warned[mtype].add(
                        f"{match['seg']}-{match['field']}" if match["field"] else match["seg"]
                    )
            for segment in message.segments:
                occ = segment.name + str(segment.occurrence)
                for number in segment.populated_fields():
                    if segment.name == "MSH" and number in (1, 2):
                        continue
                    key = f"{segment.name}-{number}"
                    if segment.name in ignore or key in ignore:
                        cell = "-"
                    elif (occ, None) in whole or (occ, number) in whole:
                        cell = "u"
                    elif (occ, number) in partly:
                        cell = "p"
                    else:
                        cell = "R"
                    before = cells[mtype].get(key)
                    if before is None or _ORDER[cell] > _ORDER[before]:
                        cells[mtype][key] = cell
    for mtype, keys in warned.items():
        for key in keys:
            for field in [k for k in cells[mtype] if k == key or k.startswith(key + "-")]:
                cells[mtype][field] += "W"
    return cells, counts


def v2_table(cells: dict[str, dict[str, str]], counts: dict[str, int]) -> str:
    types = sorted(cells)
    fields = sorted({k for row in cells.values() for k in row}, key=_field_key)
    head = [
        "| field | " + " | ".join(f"{t} ({counts[t]})" for t in types) + " |",
        "|---|" + "---|" * len(types),
    ]
    rows = [f"| {f} | " + " | ".join(cells[t].get(f, "") for t in types) + " |" for f in fields]
    read = sum(c.startswith("R") for row in cells.values() for c in row.values())
    total = sum(len(row) for row in cells.values())
    share = 100 * read // total if total else 0
    tail = f"\n\n{read} of {total} (message type, filled field) pairs read whole ({share} %)."
    return "\n".join(head + rows) + tail


# -- WS/T 500 documents x sections -----------------------------------------------------------


def _sections(root: Any) -> list[Any]:
    return [
        s
        for s in root.iter(f"{V3}section")
        if s.getparent().getparent().tag == f"{V3}structuredBody"
    ]


def _element(obs: Any) -> bool:
    """A WS/T 500 data element with a value: an observation coded ``DE..`` with a value."""
    code = obs.find(f"{V3}code")
    return (
        code is not None
        and (code.get("code") or "").startswith("DE")
        and obs.find(f"{V3}value") is not None
    )


def _made_from(section: dict[str, Any], code: str, shown: str) -> bool:
    codes = {c.get("code") for c in (section.get("code") or {}).get("coding") or []}
    if code:
        return code in codes
    return bool(shown) and shown in (section.get("title"), (section.get("code") or {}).get("text"))


def measure_cda(tr: Translator) -> dict[tuple[str, str, str], dict[str, int]]:
    """(document code, section code, section title) -> counts."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    rows: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name in CDA_FOLDERS:
        folder = ROOT / "fixtures" / "cda" / name
        for case in cases(folder):
            raw = (folder / case["file"]).read_bytes()
            root = etree.fromstring(raw, parser)
            code_el = root.find(f"{V3}code")
            doc_code = code_el.get("code") if code_el is not None else "?"
            outcome = tr.translate(raw, case["source"])
            unread = [i.location or "" for i in outcome.issues if UNREAD in i.diagnostics]
            composition = next(
                (r for r in outcome.resources if r["resourceType"] == "Composition"), None
            )
            made = (composition or {}).get("section") or []
            for number, section in enumerate(_sections(root), start=1):
                code_el = section.find(f"{V3}code")
                code = (code_el.get("code") if code_el is not None else None) or ""
                shown = (code_el.get("displayName") if code_el is not None else None) or ""
                target = next((m for m in made if _made_from(m, code, shown)), None)
                title = (target or {}).get("title") or (section.findtext(f"{V3}title") or shown)
                row = rows[(doc_code or "?", code, title.strip())]
                row["documents"] += 1
                row["elements"] += sum(
                    1 for obs in section.iter(f"{V3}observation") if _element(obs)
                )
                if composition is None:
                    row["report"] += 1
                elif target is not None:
                    row["section"] += 1
                    row["entries"] += len(target.get("entry") or [])
                    row["text"] += bool((target.get("text") or {}).get("div"))
                marker = f"/component[{number}]/section"
                row["unread"] += sum(1 for u in unread if marker in u)
    return rows


def cda_table(rows: dict[tuple[str, str, str], dict[str, int]]) -> str:
    head = [
        "| document | section code | section | golden documents | data elements with a value "
        "| made into | unread reports |",
        "|---|---|---|---|---|---|---|",
    ]
    out = []
    for (doc, code, title), row in sorted(rows.items()):
        if row["report"] == row["documents"]:
            into = "resources of the report or referral (no Composition)"
        elif row["section"] == row["documents"]:
            narrative = "narrative" if row["text"] == row["documents"] else "no narrative"
            into = f"Composition section ({narrative}, {row['entries']} entries)"
        else:
            into = f"Composition section in {row['section']} of {row['documents']}"
        out.append(
            f"| {doc} | {code or '—'} | {title or '—'} | {row['documents']} | {row['elements']} "
            f"| {into} | {row['unread']} |"
        )
    return "\n".join(head + out)


# -- docs ---------------------------------------------------------------------------------


def block(doc: str, marks: tuple[str, str]) -> str:
    return doc.split(marks[0], 1)[1].split(marks[1], 1)[0].strip()


def replaced(doc: str, marks: tuple[str, str], made: str) -> str:
    before, rest = doc.split(marks[0], 1)
    after = rest.split(marks[1], 1)[1]
    return f"{before}{marks[0]}\n{made}\n{marks[1]}{after}"


def tables(tr: Translator) -> dict[Path, tuple[tuple[str, str], str]]:
    return {
        V2_DOC: (V2_MARKS, v2_table(*measure_v2(tr))),
        CDA_DOC: (CDA_MARKS, cda_table(measure_cda(tr))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the tables in the docs")
    parser.add_argument("--check", action="store_true", help="exit 1 when a table is stale")
    args = parser.parse_args(argv)
    stale = 0
    for path, (marks, made) in tables(translator()).items():
        doc = path.read_text(encoding="utf-8")
        if args.check and block(doc, marks) != made:
            print(f"{path.name}: a coverage table is stale; run scripts/coverage_tables.py --write")
            stale = 1
        elif args.write:
            path.write_text(replaced(doc, marks, made), encoding="utf-8")
        if not args.check:
            print(made, end="\n\n")
    return stale


if __name__ == "__main__":
    sys.exit(main())
