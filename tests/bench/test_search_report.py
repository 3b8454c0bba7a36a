"""The search benchmark's time to a good model: Hyperband's median final best as the target,
each contender's median first time at it (never counted as never), and the ratio to
Hyperband's own time, with seeds resampled for its interval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import common, search_report
from benchmarks.search_report import REFERENCE, ratio, target_of, time_to

# Hyperband: final bests 0.30, 0.40, 0.35 -> target 0.35, reached at 40 s and 60 s -> 60 s
# is not the median: times are [inf, 40, 60] -> median 60.
HB = [[(10.0, 0.2, 0), (50.0, 0.3, 1)], [(20.0, 0.3, 0), (40.0, 0.4, 1)], [(60.0, 0.35, 2)]]
FAST = [[(5.0, 0.36, 0)], [(10.0, 0.5, 0)], [(30.0, 0.2, 0)]]
SLOW = [[(5.0, 0.1, 0)], [(80.0, 0.36, 3)], [(89.0, 0.2, 4)]]


def test_time_to_hyperbands_best() -> None:
    assert target_of(HB) == 0.35
    assert time_to(HB, 0.35) == 60.0
    assert time_to(FAST, 0.35) == 10.0  # 5 s, 10 s, never
    assert ratio(FAST, HB) == pytest.approx(10.0 / 60.0)
    assert math.isinf(time_to(SLOW, 0.35))  # one seed of three reaches it: not the median


def test_report_writes_the_goal_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    got = search_report.report("probe", {"fast": FAST, REFERENCE: HB, "slow": SLOW}, {"x": 1})
    assert got["time_to_target"]["fast"]["median_seconds"] == 10.0
    assert got["time_to_target"]["slow"]["median_seconds"] is None
    payload = json.loads((tmp_path / "probe.json").read_text())
    assert payload["target_val_accuracy"] == 0.35 and payload["x"] == 1
    assert payload["traces"]["fast"][0] == [[5.0, 0.36]]  # two values an epoch, as replayed
    assert payload["trace_trials"]["slow"] == [[0], [3], [4]]
    headers, rows = payload["tables"]["head_to_head"].values()
    row = dict(zip(headers, rows[0], strict=True))
    assert row["time to KT Hyperband best"] == "10 s" and row["reached"] == "2/3"
    assert row["x HB time"] == pytest.approx(1 / 6)
    low, high = (float(v.replace("never", "inf")) for v in row["90% interval"].split("-"))
    assert low <= 1 / 6 <= high
    slow = dict(zip(headers, rows[2], strict=True))
    assert slow["time to KT Hyperband best"] == "never" and slow["x HB time"] == "never"
    assert slow["90% interval"].endswith("never")
    assert got["time_to_target"]["slow"]["x_reference_time"] is None
