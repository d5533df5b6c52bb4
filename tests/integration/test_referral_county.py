"""The county indicator of the quarterly analysis (docs/ledger.md, 县域内就诊率): of the
referrals a facility inside the county sent, the share whose receivers are all inside the
county, for the consortium, per sending facility and for one facility; referrals from
outside counted apart. Ledger rows written to the database (SQLite; PostgreSQL with
``-m db``), counted by adapter.referral.analysis; the numbers are worked out by hand below.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium, load_consortium
from adapter.referral.analysis import analyse, flat
from adapter.store.models import ReferralLedger
from tests.integration.referral_support import OTHER, RECEIVER, ROOT, SENDER

CITY = "青山市第一人民医院"  # not a member: its name is the ledger's receiver
ZONE = ZoneInfo("Asia/Shanghai")
START, END = datetime(2026, 7, 1, tzinfo=ZONE), datetime(2026, 10, 1, tzinfo=ZONE)

# (referral, sender, receiver, direction); 柳河 is a member outside the county below
ROWS = [
    ("r1", SENDER, RECEIVER, "up"),  # in
    ("r2", SENDER, RECEIVER, "up"),  # in
    ("r3", SENDER, CITY, "up"),  # out
    ("r4", RECEIVER, CITY, "up"),  # out
    ("r5", RECEIVER, SENDER, "down"),  # in
    ("r6", RECEIVER, OTHER, "down"),  # out (柳河 is outside the county)
    ("r7", OTHER, RECEIVER, "up"),  # from outside the county
    ("r8", SENDER, RECEIVER, "up"),  # one referral, two receivers: out (one is outside)
    ("r8", SENDER, CITY, "up"),
]


def _consortium(tmp_path: Path, county: list[str] | None) -> Consortium:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    if county is not None:
        data.setdefault("referrals", {})["county_facilities"] = county
    path = tmp_path / "consortium.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_consortium(path)


@pytest.fixture
def rows(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    at = datetime(2026, 8, 3, 9, tzinfo=UTC)
    with session_factory.begin() as session:
        for n, (request, sender, receiver, direction) in enumerate(ROWS):
            session.add(
                ReferralLedger(
                    task_id=f"t{n}",
                    request_id=request,
                    direction=direction,
                    sender_facility=sender,
                    receiver_facility=receiver,
                    status="requested",
                    created_at=at + timedelta(hours=n),
                    updated_at=at,
                    follow_ups=0,
                    missing=[],
                )
            )
    return session_factory


def test_in_county_share_per_consortium_and_facility(
    rows: sessionmaker[Session], tmp_path: Path
) -> None:
    consortium = _consortium(tmp_path, [RECEIVER, SENDER])
    with rows() as session:
        county = analyse(session, consortium, START, END)["county"]
    # sent by a county facility: r1 r2 r3 r4 r5 r6 r8 (r7 came from 柳河, outside)
    assert (county["sent"], county["in_county"], county["out_of_county"]) == (7, 3, 4)
    assert county["in_county_share"] == 0.4286 and county["out_of_county_share"] == 0.5714
    assert county["up"] == {
        "sent": 5,  # r1 r2 r3 r4 r8
        "in_county": 2,
        "out_of_county": 3,
        "in_county_share": 0.4,
        "out_of_county_share": 0.6,
    }
    assert county["from_outside"] == 1
    by = {f["facility"]: f for f in county["by_facility"]}
    assert set(by) == {SENDER, RECEIVER}
    assert (by[SENDER]["sent"], by[SENDER]["in_county_share"]) == (4, 0.5)  # r1 r2 | r3 r8
    assert (by[RECEIVER]["sent"], by[RECEIVER]["in_county_share"]) == (3, 0.3333)  # r5 | r4 r6
    assert (by[RECEIVER]["up_sent"], by[RECEIVER]["up_in_county_share"]) == (1, 0.0)
    assert by[SENDER]["name"] == "青山县石桥镇卫生院"

    with rows() as session:  # one facility: its own referrals sent
        mine = analyse(session, consortium, START, END, facility=SENDER)["county"]
    assert (mine["sent"], mine["out_of_county"], mine["in_county_share"]) == (4, 2, 0.5)
    assert [f["facility"] for f in mine["by_facility"]] == [SENDER]

    figures = {(k, g): v for k, g, v in flat({"county": county})}
    assert figures[("county.by_facility.in_county_share", f"{SENDER} / 青山县石桥镇卫生院")] == 0.5
    assert figures[("county.in_county_share", "")] == 0.4286


def test_every_member_is_in_the_county_when_none_is_listed(
    rows: sessionmaker[Session], tmp_path: Path
) -> None:
    consortium = _consortium(tmp_path, None)
    with rows() as session:
        county = analyse(session, consortium, START, END)["county"]
    # 柳河 is in the county now: r6 stays inside, r7 is sent from inside
    assert (county["sent"], county["out_of_county"], county["from_outside"]) == (8, 3, 0)
    assert county["in_county_share"] == 0.625


def test_an_unknown_county_facility_is_refused_with_its_line(tmp_path: Path) -> None:
    from adapter.errors import ConfigError

    with pytest.raises(ConfigError, match=r"consortium.yaml:\d+:referrals.county_facilities.1: "):
        _consortium(tmp_path, [RECEIVER, "nowhere"])
