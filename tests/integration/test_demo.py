"""``adapter demo`` end to end, in a fresh working folder (as a new user runs it): the lab
results (README's counts), 张秀英's referral up and back down, the recognition answer, the
deliveries written to ./out/, the console's address; and a second run stores nothing
twice and writes the same files."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from adapter.cli import app
from adapter.settings import PROJECT_ROOT, get_settings
from adapter.store import read_resource
from adapter.store.models import InboundMessage, ReferralLedger

pytestmark = pytest.mark.slow
ORU = PROJECT_ROOT / "fixtures/hl7v2/oru"


@pytest.fixture
def workdir(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    for name in ("ADAPTER_CONFIG", "ADAPTER_MAPPINGS_DIR", "ADAPTER_RECOGNITION_CATALOGUE"):
        monkeypatch.delenv(name, raising=False)  # the embedded defaults
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _demo() -> Result:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    return result


def _files(out: Path) -> dict[str, set[str]]:
    return {d.name: {f.name for f in d.glob("*.json")} for d in out.iterdir() if d.is_dir()}


def _report_with(folder: Path, text: str) -> dict:
    """The delivered DiagnosticReport whose content names ``text`` (an order number)."""
    found = [
        json.loads(f.read_text(encoding="utf-8"))
        for f in folder.glob("DiagnosticReport-*.json")
        if text in f.read_text(encoding="utf-8")
    ]
    assert len(found) == 1, (folder, text, len(found))
    return found[0]


def test_the_demo_tells_the_consortium_story(
    workdir: Path, session_factory: sessionmaker[Session]
) -> None:
    result = _demo()
    output = result.output
    labs = len(list(ORU.glob("*/*.hl7")))
    assert f"{labs} messages: 22 processed, 8 processed-with-warnings" in output  # README
    # the referral loop, step by step, every message translated
    steps = re.findall(r"^(\d)\. .*?: (\S+) -> ", output, re.MULTILINE)
    assert [n for n, _ in steps] == [str(i) for i in range(1, 8)]
    assert all(status == "processed" for _, status in steps), output
    assert "县医院 同意接收: Task/" in output
    # the referral states: up admitted, discharged, its summary back; down requested
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == labs + 7
        rows = {r.direction: r for r in session.scalars(select(ReferralLedger))}
        assert set(rows) == {"up", "down"}
        up, down = rows["up"], rows["down"]
        assert (up.sender_facility, up.receiver_facility) == (
            "shiqiao-township-centre",
            "qingshan-county-hospital",
        )
        assert up.accepted_at and up.admitted_at and up.discharged_at
        assert up.feedback_document and up.feedback_document.startswith("Composition/")
        task = read_resource(session, "Task", up.task_id)
        assert task is not None and task["status"] == "in-progress"
        assert task["businessStatus"]["text"] == "已出院回转"
        assert (down.sender_facility, down.receiver_facility) == (
            "qingshan-county-hospital",
            "shiqiao-township-centre",
        )
        assert down.status == "requested"
    assert f"上转 (石桥 -> 县医院): Task/{up.task_id} in-progress / 已出院回转" in output
    assert f"下转 (县医院 -> 石桥): Task/{down.task_id} requested / 已申请" in output
    # the recognition query at her admission: the township's blood count is recognisable
    assert "白细胞计数 (WBC): 可互认 (青山县石桥镇卫生院, through 2026-12-03)" in output
    # the deliveries: one folder per destination under ./out/
    out = workdir / "out"
    files = _files(out)
    assert set(files) == {"county-hospital-fhir", "shiqiao-fhir", "liuhe-fhir"}
    # 检验结果上传总院: the township's blood count of 张秀英 reached the county hospital
    township = _report_with(out / "county-hospital-fhir", "SQ20261130011")
    # 结果回传基层: the county's blood count during her stay went back to the township
    county = _report_with(out / "shiqiao-fhir", "2612030021")
    assert township["subject"]["reference"].startswith("Patient/")
    assert county["subject"]["reference"] != township["subject"]["reference"]  # 2 records
    assert f"DiagnosticReport-{county['id']}.json" in output
    for name, found in files.items():
        assert f"out/{name}/: {len(found)} files" in output
    assert "http://127.0.0.1:8080/console/" in output
    # a second run: nothing stored twice, the same files
    again = _demo().output
    assert "(already received)" in again and "已在后续状态 (unchanged)" in again
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == labs + 7
    assert _files(out) == files
