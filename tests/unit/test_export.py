"""CSV and XLSX exports: formula-like text neutralised, numbers left numbers, Chinese
headers readable, read back with the csv module and with openpyxl."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from openpyxl import load_workbook

from adapter.export import neutralise, write_csv, write_xlsx

HEADERS = ["姓名", "备注", "数值", "日期"]
ROWS = [
    ["张伟", '=HYPERLINK("http://evil","点击")', -5, date(2026, 3, 1)],
    ["+86 139", "-5", Decimal("-1.25"), datetime(2026, 3, 1, 8, 30)],
    ["@SUM(A1)", "\t=1+1", 6.1, datetime(2026, 3, 1, 8, 30, tzinfo=UTC)],
    ["\r=cmd", "＝1+1", 0, None],
    ["普通文本 = 不在开头", "5-3", True, "2026-03-01"],
]
NEUTRALISED = [
    ["张伟", '\'=HYPERLINK("http://evil","点击")'],
    ["'+86 139", "'-5"],
    ["'@SUM(A1)", "'\t=1+1"],
    ["'\r=cmd", "'＝1+1"],
    ["普通文本 = 不在开头", "5-3"],
]


def test_the_rule() -> None:
    for text in ("=1", "+1", "-1", "@x", "\tx", "\rx", "\nx", "＝1", "＋1", "－1", "＠x"):
        assert neutralise(text) == "'" + text
    for text in ("", "张伟", "1-2", "a=b", " =1"):
        assert neutralise(text) == text
    for number in (-5, -1.5, Decimal("-2"), 0):
        assert neutralise(number) == number  # a number stays a number


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ledger.csv"
    assert write_csv(path, HEADERS, ROWS) == len(ROWS)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Chinese headers as UTF-8
    assert b"\r\n" in data
    with path.open(encoding="utf-8-sig", newline="") as stream:
        read = list(csv.reader(stream))
    assert read[0] == HEADERS
    assert [row[:2] for row in read[1:]] == NEUTRALISED
    assert [row[2] for row in read[1:]] == ["-5", "-1.25", "6.1", "0", "TRUE"]
    assert read[1][3] == "2026-03-01"
    assert read[3][3] == "2026-03-01T08:30:00+00:00"
    assert read[4][3] == ""


def test_csv_to_a_stream_leaves_it_open() -> None:
    stream = io.BytesIO()
    write_csv(stream, ["a"], [["=x"]])
    assert not stream.closed
    assert stream.getvalue() == "\ufeffa\r\n'=x\r\n".encode()


def test_xlsx_read_back_with_openpyxl(tmp_path: Path) -> None:
    path = tmp_path / "ledger.xlsx"
    assert write_xlsx(path, HEADERS, ROWS, sheet_title="转诊台账") == len(ROWS)
    sheet = load_workbook(path)["转诊台账"]
    cells = list(sheet.iter_rows())
    assert [c.value for c in cells[0]] == HEADERS
    assert [[c.value for c in row[:2]] for row in cells[1:]] == NEUTRALISED
    # no cell anywhere is a formula
    assert all(c.data_type != "f" for row in cells for c in row)
    # numbers are numbers: the negative number too; the text "-5" is text
    numbers = [row[2] for row in cells[1:]]
    assert [c.value for c in numbers] == [-5, -1.25, 6.1, 0, True]
    assert [c.data_type for c in numbers[:4]] == ["n", "n", "n", "n"]
    assert cells[2][1].data_type == "s" and cells[2][1].value == "'-5"
    assert cells[1][3].value == datetime(2026, 3, 1)  # a date cell
    assert cells[3][3].value == "2026-03-01T08:30:00+00:00"  # zoned: ISO text


def test_xlsx_drops_characters_xml_cannot_hold(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    write_xlsx(path, ["备注"], [["a\x0bb\x00c"]])
    assert load_workbook(path).active.cell(2, 1).value == "abc"


def test_xlsx_streams_many_rows(tmp_path: Path) -> None:
    path = tmp_path / "big.xlsx"
    rows = ([f"=r{i}", i, -i] for i in range(20_000))  # a generator: never a list in memory
    assert write_xlsx(path, ["a", "b", "c"], rows) == 20_000
    sheet = load_workbook(path, read_only=True).active
    [last] = list(sheet.iter_rows(min_row=20_001, max_row=20_001, values_only=True))
    assert last == ("'=r19999", 19999, -19999)
