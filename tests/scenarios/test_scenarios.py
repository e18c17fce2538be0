"""Scenario tests as data: each YAML file here is a belt, RMAs, parcels and the expected
lane and reason per parcel, run through the pure core on the virtual belt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.sorter.model import BeltConfig, Disposition, LaneSpec
from edge.sorter.policy import Policy, VerificationRule, default_policy
from simulator.testing import Directory, line, rma
from simulator.vbelt import VParcel, run_virtual

HERE = Path(__file__).parent
FILES = sorted(HERE.glob("*.yaml"))
PARCEL_KEYS = {f for f in VParcel.__dataclass_fields__}


def build(data: dict[str, Any]) -> tuple[BeltConfig, Directory, Policy, list[VParcel], list[dict]]:
    belt = dict(data["belt"])
    lanes = tuple(
        LaneSpec(
            lane["name"],
            Disposition(lane["disposition"]),
            float(lane["pos_mm"]),
            None if lane["disposition"] == "quarantine" else lane["name"],
            confirm=bool(lane.get("confirm", False)),
        )
        for lane in belt.pop("lanes")
    )
    cfg = BeltConfig(lanes=lanes, **belt)
    rmas = Directory(
        *(
            rma(
                r["number"],
                *(line(**ln) for ln in r.get("lines", [{}])),
                state=r.get("state", "authorized"),
                reason=r.get("reason", "changed_mind"),
            )
            for r in data.get("rmas", [])
        )
    )
    pol = data.get("policy", {})
    base = default_policy(recalled_skus=tuple(pol.get("recalled_skus", ())))
    policy = Policy(
        pol.get("version", base.version),
        base.rules,
        assume_grade_without_camera=pol.get("assume_grade_without_camera", "A"),
        min_grade_confidence=pol.get("min_grade_confidence", 0.0),
        verification=tuple(
            VerificationRule(**{k: tuple(v) if isinstance(v, list) else v for k, v in r.items()})
            for r in pol.get("verification", ())
        ),
    )
    parcels, expects = [], []
    for p in data["parcels"]:
        p = dict(p)
        expects.append(p.pop("expect"))
        unknown = set(p) - PARCEL_KEYS
        assert not unknown, f"unknown parcel keys {unknown}"
        if "rfid_polls" in p:
            p["rfid_polls"] = tuple(bool(x) for x in p["rfid_polls"])
        parcels.append(VParcel(**p))
    return cfg, rmas, policy, parcels, expects


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_scenario(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg, rmas, policy, parcels, expects = build(data)
    run = run_virtual(cfg, rmas, parcels, policy, lane_full=data.get("lane_full", ()))
    got = [
        {
            "lane": r.physical_lane,
            "reason": r.reason,
            **({"marks": [m.value for m in r.exited.marks]} if r.exited and r.exited.marks else {}),
        }
        for r in run.results
    ]
    want = [{"marks": e["marks"], **e} if "marks" in e else e for e in expects]
    assert got == want
    # the station's own view agrees with the belt's
    assert [r.exited.final_lane.name for r in run.results if r.exited] == [
        r.physical_lane for r in run.results
    ]


def test_there_are_scenarios() -> None:
    assert len(FILES) >= 3
