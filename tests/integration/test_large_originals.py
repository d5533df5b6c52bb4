"""A large export is translated whole and its original is kept by reference (issue 8,
finding 4).

The referral templates keep the file as received in a DocumentReference. Carried inline,
the base64 of a file over 768 KB is a string over 1 MiB, which the resource check refuses:
every row of a 康宁 HIS ledger export that size was refused ("row 2 not imported ...") and
the file quarantined. A file over ``ADAPTER_ORIGINAL_INLINE_MAX_BYTES`` is now linked: the
attachment's ``url`` is the stored message's ``/messages/{id}/raw``, with its size and hash.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from pathlib import Path
from typing import Any

import httpx

from adapter.identity.national_id import national_id_check_char
from tests.live.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
LEDGER = ROOT / "fixtures" / "csv" / "referral" / "liuhe-his-csv" / "ledger-two-slips.csv"
LONG_TEXT = ROOT / "fixtures" / "long-text"
SERVER_START = 120.0


def _national_id(n: int) -> str:
    first17 = f"430999{1950 + n % 50:04d}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    return first17 + national_id_check_char(first17)


def ledger_export(min_bytes: int) -> tuple[bytes, int]:
    """A 康宁 HIS ledger CSV of at least ``min_bytes``: the fixture's rows over and over,
    each a slip of its own (转诊单号), 120 patients, the history and treatment written out
    the way clinicians write them. Returns the bytes and the number of slips."""
    header, *rows = list(csv.reader(io.StringIO(LEDGER.read_text(encoding="utf-8"))))
    column = {name: i for i, name in enumerate(header)}
    history = "".join((LONG_TEXT / "bone-marrow-morphology.txt").read_text("utf-8").split())
    treatment = "".join((LONG_TEXT / "ct-chest-abdomen-findings.txt").read_text("utf-8").split())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    count = 0
    while out.tell() < min_bytes:  # characters; the UTF-8 bytes are about three times more
        row = list(rows[count % len(rows)])
        patient = count % 120
        row[column["转诊单号"]] = f"LH-ZZ-2026-{10000 + count}"
        row[column["身份证号"]] = _national_id(patient)
        row[column["门诊号"]] = f"LH{200000 + patient}"
        row[column["出生日期"]] = (
            f"{row[column['身份证号']][6:10]}-{row[column['身份证号']][10:12]}-"
            f"{row[column['身份证号']][12:14]}"
        )
        row[column["性别"]] = "男" if int(row[column["身份证号"]][16]) % 2 else "女"
        row[column["主要现病史"]] = history[count % 300 : count % 300 + 400]
        row[column["治疗经过"]] = treatment[count % 500 : count % 500 + 300]
        writer.writerow(row)
        count += 1
        if len(out.getvalue().encode("utf-8")) >= min_bytes:
            break
    return out.getvalue().encode("utf-8"), count


def _total(server: LiveServer, query: str) -> int:
    answer = httpx.get(server.url(f"/fhir/{query}"), timeout=60)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


def _document(server: LiveServer, sha256: str) -> dict[str, Any]:
    answer = httpx.get(
        server.url("/fhir/DocumentReference"),
        params={"identifier": f"urn:ietf:rfc:3986|urn:sha256:{sha256}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    [entry] = answer.json()["entry"]
    return entry["resource"]


def test_a_two_megabyte_csv_export_is_translated_whole_and_its_original_linked(
    database_url: str, tmp_path: Path
) -> None:
    raw, rows = ledger_export(2_000_000)
    sha256 = hashlib.sha256(raw).hexdigest()
    assert len(raw) >= 2_000_000
    with LiveServer(database_url, tmp_path, start_timeout=SERVER_START) as server:
        answer = httpx.post(
            server.url("/ingest"),
            content=raw,
            headers={"X-Source-System": "liuhe-his-csv", "Content-Type": "text/csv"},
            timeout=600,
        )
        assert answer.status_code == 202, answer.text[:2000]
        result = answer.json()
        assert result["status"] in ("processed", "processed-with-warnings")
        assert not [i for i in result["issues"] if "not imported" in i["diagnostics"]]
        # every row translated: one ServiceRequest per slip
        assert _total(server, "ServiceRequest?_count=1") == rows

        document = _document(server, sha256)
        [content] = document["content"]
        attachment = content["attachment"]
        assert "data" not in attachment
        assert attachment["size"] == len(raw)
        assert attachment["hash"] == base64.b64encode(hashlib.sha1(raw).digest()).decode()
        assert attachment["url"] == server.url(f"/messages/{result['message_id']}/raw")
        original = httpx.get(attachment["url"], timeout=60)
        assert original.status_code == 200
        assert hashlib.sha256(original.content).hexdigest() == sha256
        assert original.content == raw


def test_a_small_export_keeps_its_original_inline(database_url: str, tmp_path: Path) -> None:
    raw = LEDGER.read_bytes()
    with LiveServer(database_url, tmp_path, start_timeout=SERVER_START) as server:
        answer = httpx.post(
            server.url("/ingest"),
            content=raw,
            headers={"X-Source-System": "liuhe-his-csv", "Content-Type": "text/csv"},
            timeout=60,
        )
        assert answer.status_code == 202, answer.text
        attachment = _document(server, hashlib.sha256(raw).hexdigest())["content"][0]["attachment"]
    assert base64.b64decode(attachment["data"]) == raw
    assert "url" not in attachment
