"""The pipeline benchmark's noise report: two speeds flagged as two, spread as one, and every
timed call's costs recorded."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmarks.pipeline_probe import Probe, clusters, syscalls_per_call


def test_two_speeds_are_told_from_noise() -> None:
    assert clusters([300.3, 298.0, 616.0, 606.0, 611.0]) == "two: 2 at ~299, 3 at ~611"
    assert clusters([590.0, 600.0, 605.0, 612.0, 620.0]) == "one"  # within 1.25x: noise
    assert clusters([150.0, 250.0, 300.0, 400.0, 550.0]) == "one"  # spread, no hole
    assert clusters([613.7, 611.0, 678.0]) == "one"


def test_probe_records_each_call_and_skips_the_warm_up() -> None:
    probe = Probe()

    def touch() -> None:  # 32 MB of fresh memory, one write per 4 kB page
        np.frombuffer(bytearray(2**25), np.uint8)[::4096] = 1

    work = probe.wrap("alloc", touch)
    for _ in range(3):
        work()
    calls = probe.timed("alloc")
    assert len(calls) == 2 and len(probe.calls["alloc"]) == 3
    assert all(c.wall > 0 and c.user + c.system > 0 and c.peak_threads >= 1 for c in calls)
    assert all(c.faults > 1000 for c in probe.calls["alloc"])  # 8192 pages touched each call
    assert set(probe.as_json()) == {"alloc"} and "others_cores" in probe.as_json()["alloc"][0]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_memory_mappings_are_counted_per_call() -> None:
    def big() -> None:  # 64 MB: above the allocator's largest heap block, mapped every time
        np.frombuffer(bytearray(2**26), np.uint8)[::4096] = 1

    counts = syscalls_per_call(big, calls=2)
    if counts is None:
        pytest.skip("strace may not attach here")
    assert counts["mmap"] >= 1 and counts["munmap"] >= 1 and counts["unmapped_mb"] >= 64
