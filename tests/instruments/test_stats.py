"""Train statistics: equal to numpy's over stacked features, saved faithfully, cached by key."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import nsynth_research.instruments.features.stats as stats_module
from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.spectrogram import librosa_features
from nsynth_research.instruments.features.stats import (
    FeatureStats,
    compute_stats,
    load_or_compute_stats,
    manifest_key,
    stats_path,
)
from tests.instruments.fakes import write_tones

CFG = FeatureConfig()


def numpy_stats(notes: list[Note]) -> tuple[np.ndarray, np.ndarray]:
    feats = np.stack([librosa_features(load_audio(n.path), CFG) for n in notes]).astype(np.float64)
    return feats.mean(0), feats.std(0)


@pytest.fixture(scope="module")
def train_notes(tiny_corpus: Path) -> list[Note]:
    notes = read_split(tiny_corpus, "train")
    return notes[:: max(1, len(notes) // 20)][:20]


def test_stats_equal_numpy_on_real_notes(train_notes: list[Note]) -> None:
    # A batch size that does not divide the count exercises the ragged last batch.
    stats = compute_stats(train_notes, CFG, batch_size=7, progress=False)
    mean, std = numpy_stats(train_notes)
    assert stats.count == len(train_notes)
    assert stats.mean.shape == stats.std.shape == (251, 513)
    assert stats.mean.dtype == stats.std.dtype == np.float32
    np.testing.assert_allclose(stats.mean, mean, atol=1e-4, rtol=0)
    np.testing.assert_allclose(stats.std, std, atol=1e-4, rtol=0)
    assert (stats.std > 0).any()


def test_stats_equal_numpy_on_synthetic_notes(tmp_path: Path) -> None:
    notes = write_tones(tmp_path, 9)
    stats = compute_stats(notes, CFG, batch_size=4, progress=False)
    mean, std = numpy_stats(notes)
    np.testing.assert_allclose(stats.mean, mean, atol=1e-4, rtol=0)
    np.testing.assert_allclose(stats.std, std, atol=1e-4, rtol=0)
    assert len(stats.fingerprint) == 16
    assert stats.identity == manifest_key(notes, CFG)


def test_constant_input_has_zero_std(tmp_path: Path) -> None:
    note = write_tones(tmp_path, 1)[0]
    stats = compute_stats([note, note, note], CFG, progress=False)
    np.testing.assert_allclose(stats.mean, librosa_features(load_audio(note.path), CFG), atol=1e-5)
    assert np.abs(stats.std).max() < 1e-5


def test_save_load_roundtrip(tmp_path: Path) -> None:
    stats = compute_stats(write_tones(tmp_path, 3), CFG, progress=False)
    path = tmp_path / "deep" / "stats.npz"
    stats.save(path)
    loaded = FeatureStats.load(path)
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.std, stats.std)
    assert (loaded.count, loaded.fingerprint, loaded.identity) == (
        stats.count,
        stats.fingerprint,
        stats.identity,
    )
    assert loaded.config == CFG
    assert [p.name for p in path.parent.iterdir()] == ["stats.npz"]  # no temp files left


def test_damaged_file_is_refused(tmp_path: Path) -> None:
    stats = FeatureStats.from_arrays(np.zeros((251, 513)), np.ones((251, 513)), 5, CFG, "k")
    path = tmp_path / "stats.npz"
    FeatureStats(stats.mean + 1, stats.std, 5, stats.fingerprint, CFG, "k").save(path)
    with pytest.raises(DataError, match="fingerprint"):
        FeatureStats.load(path)
    path.write_bytes(b"not an npz")
    with pytest.raises(DataError, match="cannot read"):
        FeatureStats.load(path)


def test_fingerprint_covers_arrays_config_and_identity() -> None:
    mean, std = np.zeros((251, 513)), np.ones((251, 513))
    base = FeatureStats.from_arrays(mean, std, 5, CFG, "a").fingerprint
    assert FeatureStats.from_arrays(mean, std, 5, CFG, "a").fingerprint == base
    assert FeatureStats.from_arrays(mean + 1e-3, std, 5, CFG, "a").fingerprint != base
    assert FeatureStats.from_arrays(mean, std, 5, CFG, "b").fingerprint != base
    assert (
        FeatureStats.from_arrays(mean, std, 5, FeatureConfig(log_scale=10), "a").fingerprint != base
    )


def test_cache_is_reused_and_keyed(
    tiny_corpus: Path, tmp_path: Path, train_notes: list[Note], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    # Other tests cache statistics inside the shared corpus; start this copy without them.
    shutil.copytree(tiny_corpus, root, ignore=shutil.ignore_patterns("stats"))
    notes = [
        Note(**{**n.__dict__, "path": n.path.replace(str(tiny_corpus), str(root))})
        for n in train_notes[:6]
    ]
    calls: list[int] = []
    real = stats_module.compute_stats

    def counting(*args: object, **kwargs: object) -> FeatureStats:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats_module, "compute_stats", counting)

    first = load_or_compute_stats(root, notes, CFG, progress=False)
    cached = sorted((root / "stats").glob("train-*.npz"))
    assert len(cached) == 1 and len(calls) == 1
    assert cached[0] == stats_path(root, first.identity)
    mtime = cached[0].stat().st_mtime_ns

    again = load_or_compute_stats(root, list(reversed(notes)), CFG, progress=False)
    assert len(calls) == 1, "the cached statistics should have been reused"
    assert again.fingerprint == first.fingerprint
    assert cached[0].stat().st_mtime_ns == mtime

    fewer = load_or_compute_stats(root, notes[:-1], CFG, progress=False)
    other_cfg = FeatureConfig(log_scale=100.0)
    other = load_or_compute_stats(root, notes, other_cfg, progress=False)
    assert len(calls) == 3
    assert len({first.identity, fewer.identity, other.identity}) == 3
    assert fewer.count == len(notes) - 1
    assert other.config == other_cfg
    assert len(list((root / "stats").glob("train-*.npz"))) == 3

    # A damaged cache file is recomputed, not trusted.
    cached[0].write_bytes(b"garbage")
    redone = load_or_compute_stats(root, notes, CFG, progress=False)
    assert len(calls) == 4
    assert redone.fingerprint == first.fingerprint
    assert FeatureStats.load(cached[0]).fingerprint == first.fingerprint


def test_empty_note_list_is_a_data_error() -> None:
    with pytest.raises(DataError, match="empty"):
        compute_stats([], CFG, progress=False)
