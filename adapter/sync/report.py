"""The sync report as text, in Chinese (default) or English; the JSON is the report dict
itself. Business keys are listed (at most ``shown`` per list; the JSON has them all)."""

from __future__ import annotations

from typing import Any

_WORDS = {
    "zh": {
        "title": "夜间同步对账报告",
        "day": "业务日期",
        "run": "运行",
        "source": "来源",
        "facility": "机构",
        "kind": "文档类型",
        "unreachable": "来源无法访问",
        "says": "来源声明",
        "received": "适配器接收",
        "processed": "已处理",
        "warnings": "有警告",
        "quarantined": "已隔离",
        "deleted": "已删除/作废",
        "corrected": "已更正",
        "replayed": "已补发",
        "acknowledged": "目标确认",
        "delivered": "已送达",
        "pending": "待发送",
        "dead": "发送失败",
        "missing": "缺失 (按业务号)",
        "undelivered": "未送达 (按业务号)",
        "shortfall": "数量缺口",
        "alert": "数量骤降告警: 今日 {count}, 近 {days} 次中位数 {median}",
        "nothing_routed": "无需发送",
        "ok": "全部对平",
        "gaps": "仍有缺口: {n} 项 (adapter sync --replay-gaps 补发)",
        "down": "有来源无法访问: {n} 个",
        "more": "… 另有 {n} 项",
        "items": "项",
    },
    "en": {
        "title": "Nightly sync reconciliation report",
        "day": "business day",
        "run": "run",
        "source": "source",
        "facility": "facility",
        "kind": "document kind",
        "unreachable": "source unreachable",
        "says": "source says",
        "received": "adapter received",
        "processed": "processed",
        "warnings": "with warnings",
        "quarantined": "quarantined",
        "deleted": "deleted / voided",
        "corrected": "corrected",
        "replayed": "replayed",
        "acknowledged": "destinations acknowledged",
        "delivered": "delivered",
        "pending": "pending",
        "dead": "failed",
        "missing": "missing (by business key)",
        "undelivered": "not delivered (by business key)",
        "shortfall": "count shortfall",
        "alert": "volume drop alert: {count} today, median {median} over {days} runs",
        "nothing_routed": "nothing to deliver",
        "ok": "all reconciled",
        "gaps": "gaps remain: {n} (adapter sync --replay-gaps sends them)",
        "down": "sources unreachable: {n}",
        "more": "… and {n} more",
        "items": "items",
    },
}


def render(report: dict[str, Any], lang: str = "zh", shown: int = 20) -> str:
    w = _WORDS["en" if lang == "en" else "zh"]
    run = report["run"]
    lines = [f"{w['title']}  {w['day']} {run['day']}  ({w['run']} {run['id'][:8]})", ""]
    for part in report["sources"]:
        lines.append(
            f"{w['source']} {part['sync_source']}  {w['facility']} {part['facility']}  "
            f"{w['kind']} {part['document_kind']}"
        )
        if part["error"]:
            lines.append(f"  {w['unreachable']}: {part['error']}")
        said = part["source"]
        if said["count"] is not None:
            lines.append(f"  {w['says']}: {said['count']} ({said['how']})")
        r = part["received"]
        lines.append(
            f"  {w['received']}: {r['total']}  {w['processed']} {r['processed']}, "
            f"{w['warnings']} {r['warnings']}, {w['quarantined']} {r['quarantined']}, "
            f"{w['deleted']} {r['deleted']}, {w['corrected']} {r['corrected']}, "
            f"{w['replayed']} {r['replayed']}"
        )
        if part["destinations"]:
            for destination, figures in part["destinations"].items():
                lines.append(
                    f"  {w['acknowledged']} {destination}: {w['delivered']} "
                    f"{figures['delivered']}, {w['pending']} {figures['pending']}, "
                    f"{w['dead']} {figures['dead']}"
                )
        else:
            lines.append(f"  {w['acknowledged']}: {w['nothing_routed']}")
        gaps = part["gaps"]
        for name in ("missing", "quarantined", "undelivered"):
            if gaps[name]:
                lines.append(f"  {w[name]}: {_keys(gaps[name], shown, w)}")
        if gaps["count_shortfall"] and not gaps["missing"]:
            lines.append(f"  {w['shortfall']}: {gaps['count_shortfall']}")
        for name in ("deleted", "corrected"):
            if part[name]:
                lines.append(f"  {w[name]}: {_keys(part[name], shown, w)}")
        if part.get("volume_alert"):
            lines.append("  " + w["alert"].format(**part["volume_alert"]))
        lines.append("")
    totals = report["totals"]
    if totals["unreachable"]:
        lines.append(w["down"].format(n=totals["unreachable"]))
    if totals["gaps"]:
        lines.append(w["gaps"].format(n=totals["gaps"]))
    if not totals["unreachable"] and not totals["gaps"]:
        lines.append(w["ok"])
    return "\n".join(lines) + "\n"


def _keys(keys: list[str], shown: int, w: dict[str, str]) -> str:
    text = ", ".join(keys[:shown])
    return text + (" " + w["more"].format(n=len(keys) - shown) if len(keys) > shown else "")
