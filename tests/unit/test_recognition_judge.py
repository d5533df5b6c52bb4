"""The rules of adapter.recognition.query.judge on single results, without a database: the
reasons the API tests cannot reach with the example data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from adapter.consortium import load_consortium
from adapter.recognition.catalogue import Item, load_catalogue
from adapter.recognition.query import StoredResult, expiry, judge

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CONSORTIUM = load_consortium(FIXTURES / "consortium.yaml")
CATALOGUE = load_catalogue(FIXTURES / "recognition.yaml", {f.id for f in CONSORTIUM.facilities})
SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def result(facility: str | None = "shiqiao-township-centre", **body) -> StoredResult:
    base = {"resourceType": "Observation", "status": "final", **body}
    base.setdefault("effectiveDateTime", "2026-11-25T09:00:00+08:00")
    return StoredResult("Observation", "o1", facility, base)


def reason(item: Item, stored: StoredResult, at: datetime = AT) -> str | None:
    return judge(CATALOGUE, item, stored, at, "outpatient", SHANGHAI).reason


WBC = CATALOGUE.item("QS-JY-001")


def test_method_differs_where_the_item_names_its_methods():
    item = WBC.model_copy(update={"method": ["FCM"]})
    flow = {"coding": [{"code": "FCM"}]}
    manual = {"coding": [{"code": "MANUAL"}]}
    assert reason(item, result(method=flow)) is None
    assert reason(item, result(method=manual)) == "method-differs"
    assert reason(item, result()) == "method-differs"  # none recorded
    assert reason(WBC, result(method=manual)) is None  # the item does not care


def test_no_date_unknown_facility_and_missing_eqa():
    no_date = StoredResult("Observation", "o1", "shiqiao-township-centre", {"status": "final"})
    assert reason(WBC, no_date) == "no-date"
    assert reason(WBC, result(facility=None)) == "facility-unknown"
    # 石桥 takes part in city recognition but no assessment covers exams (放射): missing
    ct = CATALOGUE.item("QS-JC-001")
    assert reason(ct, result(facility="shiqiao-township-centre")) == "eqa-missing"


def test_issued_is_the_time_when_there_is_no_effective_time():
    stored = StoredResult(
        "Observation",
        "o1",
        "shiqiao-township-centre",
        {"status": "final", "issued": "2026-11-25T09:00:00+08:00"},
    )
    judged = judge(CATALOGUE, WBC, stored, AT, "outpatient", SHANGHAI)
    assert judged.recognisable and judged.taken == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def test_a_time_without_zone_is_read_in_the_consortium_zone():
    late = result(effectiveDateTime="2026-11-18T23:59:00")  # 23:59 in Shanghai, day 0
    last_moment = datetime(2026, 11, 25, 23, 59, 59, tzinfo=SHANGHAI)
    assert reason(WBC, late, last_moment) is None
    assert reason(WBC, late, datetime(2026, 11, 26, 0, 0, tzinfo=SHANGHAI)) == "expired"


def test_expiry_is_midnight_after_the_last_valid_day():
    taken = datetime(2026, 11, 24, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    assert expiry(taken, 7, SHANGHAI) == datetime(2026, 12, 2, 0, 0, tzinfo=SHANGHAI)
    just_after = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # 00:00 next day in Shanghai
    assert expiry(just_after, 7, SHANGHAI) == datetime(2026, 12, 3, 0, 0, tzinfo=SHANGHAI)
