"""The rows gatherer: batches equal to gathering, casting and normalising whole arrays, and
the kernel told about a row only when reading it can still cost a disk read."""

from __future__ import annotations

import numpy as np
import pytest

import nsynth_research.instruments.features.rows as rows_module
from nsynth_research.instruments.features.rows import Gatherer


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_normalised_batch_has_the_bits_of_whole_array_arithmetic(dtype) -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(3.0, 2.0, (20, 7, 5)).astype(dtype)
    mean = rng.normal(size=(7, 5)).astype(np.float32)
    denom = rng.uniform(0.5, 2.0, (7, 5)).astype(np.float32)
    where = list(rng.permutation(20)[:12])
    gather = Gatherer(rows, where, (mean, denom), advise=False)
    positions = np.array([3, 0, 11, 3, 7])
    expected = (rows[np.asarray(where)[positions]].astype(np.float32) - mean) / denom
    got = gather(positions)
    assert got.shape == (5, 7, 5, 1) and got.dtype == np.float32
    assert np.array_equal(got[..., 0], expected)
    raw = Gatherer(rows, where, None, advise=False)(positions)
    assert np.array_equal(raw, rows[np.asarray(where)[positions]].astype(np.float32))
    stored = Gatherer(rows, where, None, widen=False, advise=False)(positions)
    assert stored.dtype == dtype and np.array_equal(stored, rows[np.asarray(where)[positions]])


@pytest.mark.parametrize(("memory", "advised"), [(10**12, [[4, 9], [2]]), (1, [[4, 9], [9, 2]])])
def test_rows_are_advised_once_unless_the_file_outgrows_memory(
    monkeypatch: pytest.MonkeyPatch, memory: int, advised: list[list[int]]
) -> None:
    calls: list[list[int]] = []
    monkeypatch.setattr(rows_module, "physical_memory", lambda: memory)
    monkeypatch.setattr(rows_module, "advise_willneed", lambda _r, w: calls.append(list(w)))
    gather = Gatherer(np.zeros((10, 2, 2), np.float32), list(range(10)), None)
    gather(np.array([4, 9]))
    gather(np.array([9, 2]))
    assert calls == advised
