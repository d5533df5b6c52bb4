"""The share of WS/T 500 data elements carried into FHIR, per document type, measured on the
golden CDA fixtures (fixtures/cda/{lab,exam,discharge,documents}/std-cda).

    .venv/bin/python scripts/wst500_coverage.py            # print the table
    .venv/bin/python scripts/wst500_coverage.py --write    # rewrite it in docs/cda-mappings.md
    .venv/bin/python scripts/wst500_coverage.py --check    # exit 1 when the docs table is stale

A data element is an ``observation`` whose code is a WS 363 identifier (``DE..``) and that has a
value. It counts as **in a resource** when its value (a code or name for CD, the number for
PQ / INT / REAL / MO, the date for TS, the text for ST) is a value of a resource other than the
Composition and the Bundle (Condition.code, Observation.valueQuantity, Encounter.length ...);
as **in the narrative** when the Composition's section text shows it; **carried** is either.
Report documents (C0006, C0007) make no Composition: there only resources count. Matching is by
value, so a value that happens to equal another element's is counted as carried: the figures
are an upper bound of what is structured, and exact for what is lost (a value in neither).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapter.consortium import load_consortium  # noqa: E402
from adapter.pipeline import Translator  # noqa: E402

FOLDERS = ["lab", "exam", "discharge", "documents"]
DOC = ROOT / "docs" / "cda-mappings.md"
START, END = "<!-- coverage:start -->", "<!-- coverage:end -->"
V3 = "{urn:hl7-org:v3}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_TAGS = re.compile(r"<[^>]+>")


def _number(text: str) -> str | None:
    try:
        return str(Decimal(text).normalize())
    except (InvalidOperation, ValueError):
        return None


def data_elements(raw: bytes) -> tuple[str, list[list[str]]]:
    """The document code and, per data element with a value, the texts its value may show as."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(raw, parser)
    code = root.find(f"{V3}code")
    out: list[list[str]] = []
    for obs in root.iter(f"{V3}observation"):
        obs_code = obs.find(f"{V3}code")
        value = obs.find(f"{V3}value")
        if obs_code is None or value is None or not (obs_code.get("code") or "").startswith("DE"):
            continue
        kind = (value.get(XSI_TYPE) or "").upper()
        if kind in ("PQ", "INT", "REAL", "MO"):
            candidates = [_number(value.get("value") or ""), value.get("value")]
        elif kind in ("CD", "CE", "CV", "CS", "CO"):
            candidates = [value.get("code"), value.get("displayName")]
        elif kind == "TS":
            digits = value.get("value") or ""
            candidates = [f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}" if len(digits) >= 8 else None]
        elif kind == "BL":
            candidates = [{"true": "是", "false": "否"}.get(value.get("value") or "")]
        else:
            candidates = [" ".join("".join(value.itertext()).split())]
        kept = [c for c in candidates if c]
        if kept:
            out.append(kept)
    return (code.get("code") if code is not None else "?"), out


def _leaves(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _leaves(item, out)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, out)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int | float):
        out.append(_number(str(value)) or str(value))
    elif isinstance(value, str):
        out.append(value)


def _shown(candidate: str, texts: list[str]) -> bool:
    # short texts (无, 1) must be a whole value; longer ones may sit inside a text (a note)
    if len(candidate) < 4:
        return any(t == candidate for t in texts)
    return any(candidate in t for t in texts)


def measure(translator: Translator) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for folder in FOLDERS:
        for path in sorted((ROOT / "fixtures" / "cda" / folder / "std-cda").glob("*.xml")):
            raw = path.read_bytes()
            doc_code, elements = data_elements(raw)
            resources = translator.translate(raw, "std-cda").resources
            structured: list[str] = []
            for resource in resources:
                if resource["resourceType"] not in ("Composition", "Bundle"):
                    _leaves(resource, structured)
            narrative = [
                _TAGS.sub("\n", (s.get("text") or {}).get("div", ""))
                for r in resources
                if r["resourceType"] == "Composition"
                for s in r.get("section") or []
            ]
            # the value part of each narrative line ("名称：值")
            lines = [
                line.split("：", 1)[1]
                for text in narrative
                for line in text.split("\n")
                if "：" in line
            ]
            row = totals[doc_code]
            row["documents"] += 1
            for candidates in elements:
                in_resource = any(_shown(c, structured) for c in candidates)
                # a value is shown first in its line: "好转（2）", "37.9℃", "6231.50元"
                in_text = any(line.startswith(c) for c in candidates for line in lines)
                row["elements"] += 1
                row["in_resource"] += in_resource
                row["carried"] += in_resource or in_text
    return totals


def table(totals: dict[str, dict[str, int]]) -> str:
    head = [
        "| document | golden documents | data elements with a value | carried into FHIR "
        "| into a resource (not only narrative) |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for code in sorted(totals):
        row = totals[code]
        n = row["elements"]

        def pct(k: str, n: int = n, row: dict[str, int] = row) -> str:
            return f"{row[k]} ({100 * row[k] // n} %)" if n else "—"

        rows.append(
            f"| {code} | {row['documents']} | {n} | {pct('carried')} | {pct('in_resource')} |"
        )
    return "\n".join(head + rows)


def _translator() -> Translator:
    translator = Translator(
        load_consortium(ROOT / "fixtures" / "consortium.yaml"),
        mappings_dir=ROOT / "mappings",
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    translator.load_all_mappings()
    return translator


def current_block(doc: str) -> str:
    return doc.split(START, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {DOC.name}")
    parser.add_argument("--check", action="store_true", help="exit 1 when the docs table is stale")
    args = parser.parse_args(argv)
    made = table(measure(_translator()))
    doc = DOC.read_text(encoding="utf-8")
    if args.check:
        if current_block(doc) != made:
            print(
                f"{DOC.name}: the coverage table is stale; run scripts/wst500_coverage.py --write"
            )
            return 1
        return 0
    if args.write:
        before, rest = doc.split(START, 1)
        after = rest.split(END, 1)[1]
        DOC.write_text(f"{before}{START}\n{made}\n{END}{after}", encoding="utf-8")
    print(made)
    return 0


if __name__ == "__main__":
    sys.exit(main())
