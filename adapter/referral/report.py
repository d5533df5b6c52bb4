"""The 转诊台账 as a listing (docs/ledger.md): the columns and their Chinese headers, the
filters (facility, department, type, status, period, keyword, the week ending Friday),
and the exports: CSV and XLSX through adapter/export.py (formula-safe, openpyxl
write-only, decision 0013) and a printable HTML page (no script, nothing loaded from
elsewhere). Rows stream from the database (``yield_per``): a year exports in bounded
memory.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Text, cast, or_, select
from sqlalchemy.orm import Session

from adapter.consortium import Consortium
from adapter.export import write_csv, write_xlsx
from adapter.referral.rules import table
from adapter.store.models import ReferralLedger

DIRECTIONS = {"up": "上转", "down": "下转", "same": "平转"}
STATUS_TEXT = {
    "draft": "草稿",
    "requested": "已申请",
    "received": "已接收",
    "accepted": "已同意",
    "rejected": "已拒绝",
    "in-progress": "进行中",
    "on-hold": "暂停",
    "completed": "已完成",
    "failed": "失败",
    "cancelled": "已取消",
    "entered-in-error": "录入错误",
}


@dataclass(frozen=True, slots=True)
class Filters:
    facility: str | None = None  # sender or receiver
    department: str | None = None  # sending or receiving department
    direction: str | None = None  # up, down, same
    status: str | None = None  # a Task.status or a businessStatus code
    start: datetime | None = None  # created at or after
    end: datetime | None = None  # created before
    keyword: str | None = None
    emergency: bool | None = None
    green_channel: bool | None = None
    backfilled: bool | None = None
    incomplete: bool | None = None  # something missing (缺项)
    incomplete_or_late: bool = False  # something missing, or written after the transfer


def week_ending(friday: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The reporting week that ends on ``friday`` (科室联络员 每周五上报): Saturday 00:00
    to the Friday's end, in the consortium's time zone."""
    if friday.weekday() != 4:
        raise ValueError(f"{friday.isoformat()} is not a Friday (the week ends on Friday)")
    start = datetime.combine(friday - timedelta(days=6), time(), zone)
    return start, datetime.combine(friday + timedelta(days=1), time(), zone)


def query(filters: Filters) -> Select[tuple[ReferralLedger]]:
    q = select(ReferralLedger)
    if filters.facility:
        q = q.where(
            or_(
                ReferralLedger.sender_facility == filters.facility,
                ReferralLedger.receiver_facility == filters.facility,
            )
        )
    if filters.department:
        q = q.where(
            or_(
                ReferralLedger.sender_department == filters.department,
                ReferralLedger.receiver_department == filters.department,
            )
        )
    if filters.direction:
        q = q.where(ReferralLedger.direction == filters.direction)
    if filters.status:
        q = q.where(
            or_(
                ReferralLedger.status == filters.status,
                ReferralLedger.business_status == filters.status,
            )
        )
    if filters.start:
        q = q.where(ReferralLedger.created_at >= filters.start)
    if filters.end:
        q = q.where(ReferralLedger.created_at < filters.end)
    if filters.incomplete is not None:
        empty = cast(ReferralLedger.missing, Text) == "[]"
        q = q.where(~empty if filters.incomplete else empty)
    if filters.incomplete_or_late:
        q = q.where(
            or_(cast(ReferralLedger.missing, Text) != "[]", ReferralLedger.backfilled.is_(True))
        )
    for flag in ("emergency", "green_channel", "backfilled"):
        value = getattr(filters, flag)
        if value is not None:
            q = q.where(getattr(ReferralLedger, flag).is_(value))
    if filters.keyword:
        like = f"%{filters.keyword}%"
        q = q.where(
            or_(
                *(
                    getattr(ReferralLedger, c).like(like)
                    for c in (
                        "slip_number",
                        "diagnosis_code",
                        "diagnosis_text",
                        "reason",
                        "sender_doctor",
                        "receiver_doctor",
                        "patient_masked",
                    )
                )
            )
        )
    return q.order_by(ReferralLedger.created_at, ReferralLedger.task_id)


def rows(
    session: Session, filters: Filters, *, limit: int | None = None, offset: int = 0
) -> Iterator[ReferralLedger]:
    q = query(filters)
    if limit is not None:
        q = q.limit(limit).offset(offset)
    yield from session.scalars(q.execution_options(yield_per=500))


def _local(value: datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else None


def columns(consortium: Consortium) -> list[tuple[str, str, Callable[[ReferralLedger], Any]]]:
    """(key, 表头, value) of every ledger column, in the order of the 台账."""
    zone = ZoneInfo(consortium.timezone or "Asia/Shanghai")
    names = {f.id: f.name for f in consortium.facilities}
    business = table().business
    reasons = table().reasons

    def when(attribute: str) -> Callable[[ReferralLedger], Any]:
        return lambda r: _local(getattr(r, attribute), zone)

    def yes(attribute: str) -> Callable[[ReferralLedger], Any]:
        return lambda r: "是" if getattr(r, attribute) else ""

    return [
        ("slip_number", "转诊单号", lambda r: r.slip_number),
        ("direction", "转诊类型", lambda r: DIRECTIONS.get(r.direction, r.direction)),
        ("emergency", "急诊", yes("emergency")),
        ("green_channel", "绿色通道", yes("green_channel")),
        ("backfilled", "补录", yes("backfilled")),
        ("patient", "患者", lambda r: r.patient_masked),
        ("sex", "性别", lambda r: {"male": "男", "female": "女"}.get(r.sex or "", r.sex)),
        ("age", "年龄", lambda r: r.age),
        ("insurance", "医保类型", lambda r: r.insurance),
        ("diagnosis_code", "ICD-10编码", lambda r: r.diagnosis_code),
        ("diagnosis", "诊断", lambda r: r.diagnosis_text),
        ("reason", "转诊原因", lambda r: r.reason),
        (
            "sender_facility",
            "转出机构",
            lambda r: names.get(r.sender_facility or "", r.sender_facility),
        ),
        ("sender_department", "转出科室", lambda r: r.sender_department),
        ("sender_doctor", "转出医生", lambda r: r.sender_doctor),
        (
            "receiver_facility",
            "转入机构",
            lambda r: names.get(r.receiver_facility or "", r.receiver_facility),
        ),
        ("receiver_department", "转入科室", lambda r: r.receiver_department),
        ("receiver_doctor", "接诊医生", lambda r: r.receiver_doctor),
        ("status", "状态", lambda r: STATUS_TEXT.get(r.status, r.status)),
        (
            "business_status",
            "业务状态",
            lambda r: (
                business[r.business_status].display
                if r.business_status in business
                else r.business_status
            ),
        ),
        (
            "rejection_reason",
            "拒绝原因",
            lambda r: reasons.get(r.rejection_reason or "", r.rejection_reason),
        ),
        ("created_at", "申请时间", when("created_at")),
        ("received_at", "接收时间", when("received_at")),
        ("accepted_at", "同意时间", when("accepted_at")),
        ("arrived_at", "到诊时间", when("arrived_at")),
        ("admitted_at", "入院时间", when("admitted_at")),
        ("discharged_at", "出院回转时间", when("discharged_at")),
        ("followed_up_at", "随访时间", when("followed_up_at")),
        ("follow_ups", "随访次数", lambda r: r.follow_ups),
        ("feedback_document", "反馈文书", lambda r: r.feedback_document),
        ("follow_up_record", "随访记录", lambda r: r.follow_up_record),
        ("missing", "缺项", lambda r: "、".join(r.missing or [])),
        ("out_of_county", "县外转诊", yes("out_of_county")),
        ("task", "Task", lambda r: f"Task/{r.task_id}"),
    ]


def as_dicts(consortium: Consortium, found: Iterable[ReferralLedger]) -> Iterator[dict[str, Any]]:
    """JSON rows: the codes and ISO times as stored, the display beside them."""
    cols = columns(consortium)
    for row in found:
        item = {key: get(row) for key, _, get in cols}
        item.update(
            {
                "direction_code": row.direction,
                "status_code": row.status,
                "business_status_code": row.business_status,
                "rejection_reason_code": row.rejection_reason,
                "missing": list(row.missing or []),
                **{
                    f"{name}_iso": getattr(row, name).isoformat() if getattr(row, name) else None
                    for name in (
                        "created_at",
                        "received_at",
                        "accepted_at",
                        "arrived_at",
                        "admitted_at",
                        "discharged_at",
                        "followed_up_at",
                        "closed_at",
                    )
                },
            }
        )
        yield item


def export(
    consortium: Consortium,
    found: Iterable[ReferralLedger],
    fmt: str,
    target: Path | IO[bytes],
    *,
    title: str = "转诊台账",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the ledger as ``csv``, ``xlsx`` or ``html``; the number of rows."""
    cols = columns(consortium)
    count = 0

    def values() -> Iterator[list[Any]]:
        nonlocal count
        for row in found:
            count += 1
            if progress and count % 1000 == 0:
                progress(count)
            yield [get(row) for _, _, get in cols]

    headers = [header for _, header, _ in cols]
    if fmt == "csv":
        write_csv(target, headers, values())
    elif fmt == "xlsx":
        write_xlsx(target, headers, values(), sheet_title=title[:31])
    elif fmt == "html":
        write_html(target, title, headers, values())
    else:
        raise ValueError(f"unknown format {fmt!r}; one of: csv, xlsx, html")
    return count


PRINT_CSS = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; font-size: 10pt; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #444; padding: 2px 4px; vertical-align: top; }
th { background: #eee; }
@page { size: A4 landscape; margin: 10mm; }
@media print { thead { display: table-header-group; } tr { page-break-inside: avoid; } }
"""


def write_html(
    target: Path | IO[bytes], title: str, headers: list[str], body: Iterable[list[Any]]
) -> None:
    """A printable page (A4 landscape, headers repeated on each page): escaped text, no
    script, nothing loaded from elsewhere."""
    out = target.open("wb") if isinstance(target, Path) else target
    try:
        out.write(
            (
                '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
                f"<title>{html.escape(title)}</title><style>{PRINT_CSS}</style></head><body>"
                f"<h1>{html.escape(title)}</h1><table><thead><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                + "</tr></thead><tbody>\n"
            ).encode()
        )
        for values in body:
            cells = "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in values)
            out.write(f"<tr>{cells}</tr>\n".encode())
        out.write(b"</tbody></table></body></html>\n")
    finally:
        if isinstance(target, Path):
            out.close()
