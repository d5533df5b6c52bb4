"""Allowed referral paths (adapter/referral/paths.py path_problem) on the example
consortium's facilities: the county hospital (county) and two township centres."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapter.consortium import Consortium
from adapter.referral.paths import path_problem

ROOT = Path(__file__).resolve().parents[2]
COUNTY, SHIQIAO, LIUHE = (
    "qingshan-county-hospital",
    "shiqiao-township-centre",
    "liuhe-township-centre",
)


def _consortium(paths: list[dict] | None = None) -> Consortium:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    if paths is not None:
        data["referrals"] = {"paths": paths}
    return Consortium.model_validate(data)


@pytest.mark.parametrize(
    ("sender", "receiver", "direction", "allowed"),
    [
        (SHIQIAO, COUNTY, "up", True),
        (COUNTY, SHIQIAO, "down", True),
        (SHIQIAO, LIUHE, "up", True),  # same level: both ways
        (LIUHE, SHIQIAO, "down", True),
        (SHIQIAO, COUNTY, None, True),  # no direction stated: by the levels
        (COUNTY, SHIQIAO, "up", False),  # 上转 to a lower level
        (SHIQIAO, COUNTY, "down", False),  # 下转 to a higher level
        (SHIQIAO, "outside", "down", True),  # not a member: nothing to check
    ],
)
def test_default_paths(sender: str, receiver: str, direction: str | None, allowed: bool) -> None:
    problem = path_problem(_consortium(), sender, receiver, direction)
    assert (problem is None) is allowed, problem


def test_configured_paths_and_the_message() -> None:
    only_county_down = _consortium([{"from": "county", "to": "township", "direction": "down"}])
    assert path_problem(only_county_down, COUNTY, SHIQIAO, "down") is None
    problem = path_problem(only_county_down, SHIQIAO, COUNTY, "up")
    assert problem == (
        "referral outside the allowed paths: 上转 from shiqiao-township-centre (township) "
        "to qingshan-county-hospital (county)"
    )


def test_a_wrong_level_in_the_paths_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown level 'hamlet'"):
        _consortium([{"from": "hamlet", "to": "county"}])
