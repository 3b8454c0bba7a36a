"""The feature cache: stores each note once, survives damage and kills, refuses a full disk."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.cache import cache_dir, ensure_cached
from nsynth_research.instruments.features.spectrogram import librosa_features
from nsynth_research.instruments.features.stats import compute_stats
from tests.instruments.fakes import build_archive, write_notes

CFG = FeatureConfig()
NBYTES = CFG.frames * CFG.bins * 4


def stored(path: Path) -> np.ndarray:
    return np.fromfile(path, "<f4").reshape(CFG.frames, CFG.bins)


def test_files_hold_each_notes_features(tmp_path: Path) -> None:
    notes = write_notes(tmp_path / "wavs", 5)
    cache = ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    for note in notes:
        path = cache.path_for(note)
        assert path.stat().st_size == NBYTES
        ref = librosa_features(load_audio(note.path), CFG)
        np.testing.assert_allclose(stored(path), ref, atol=1e-3)


def test_rerun_writes_nothing_and_repairs_damage(tmp_path: Path) -> None:
    notes = write_notes(tmp_path / "wavs", 4)
    cache = ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    paths = [cache.path_for(n) for n in notes]
    before = [p.stat().st_mtime_ns for p in paths]
    good = stored(paths[2]).copy()
    time.sleep(0.01)
    ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    assert [p.stat().st_mtime_ns for p in paths] == before

    # A truncated file (a disk that filled up under another tool) is recomputed.
    paths[2].write_bytes(paths[2].read_bytes()[:1000])
    stale = tmp_path / "cache" / ".x.f32.abc.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(stored(paths[2]), good)
    assert [p.stat().st_mtime_ns for i, p in enumerate(paths) if i != 2] == [
        t for i, t in enumerate(before) if i != 2
    ]
    assert not stale.exists()


def test_archived_notes_land_in_their_own_files(tmp_path: Path) -> None:
    src = write_notes(tmp_path / "wavs", 5, seed=4)
    packed = build_archive(tmp_path, src)
    cache = ensure_cached(packed[::-1], CFG, tmp_path / "cache", progress=False)
    for note, original in zip(packed, src, strict=True):
        ref = librosa_features(load_audio(original.path), CFG)
        np.testing.assert_allclose(stored(cache.path_for(note)), ref, atol=1e-3)


def test_full_disk_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = write_notes(tmp_path / "wavs", 3)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage._replace(free=2 * NBYTES))
    with pytest.raises(DataError, match=r"data.feature_cache=false") as err:
        ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    assert "3 notes" in str(err.value)
    assert not list((tmp_path / "cache").glob("*.f32"))


def test_folder_key_follows_features_and_data(tiny_corpus: Path, tmp_path: Path) -> None:
    train = cache_dir(tiny_corpus, "train", CFG)
    assert train.parent == tiny_corpus / "features" and train.name.startswith("train-")
    assert cache_dir(tiny_corpus, "valid", CFG) != train
    assert cache_dir(tiny_corpus, "train", FeatureConfig(log_scale=100.0)) != train
    copy = tmp_path / "copy"
    shutil.copytree(tiny_corpus, copy, ignore=shutil.ignore_patterns("features", "stats"))
    assert cache_dir(copy, "train", CFG).name == train.name  # data, not location
    # Same names and labels, other audio (a re-render): the key follows the content.
    wav = next((copy / "nsynth-train" / "audio").glob("*.wav"))
    data = bytearray(wav.read_bytes())
    data[-2:] = b"\x01\x00" if data[-2:] != b"\x01\x00" else b"\x02\x00"
    wav.write_bytes(bytes(data))
    assert cache_dir(copy, "train", CFG).name != train.name
    examples = copy / "nsynth-train" / "examples.json"
    moved = cache_dir(copy, "train", CFG).name
    examples.write_text(examples.read_text().replace('"velocity": 100', '"velocity": 101', 1))
    assert cache_dir(copy, "train", CFG).name != moved


def test_folder_key_ignores_norm_eps_and_follows_the_code_version(
    tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nsynth_research.instruments.config as config_module

    train = cache_dir(tiny_corpus, "train", CFG)
    assert cache_dir(tiny_corpus, "train", FeatureConfig(norm_eps=0.5)) == train
    assert cache_dir(tiny_corpus, "train", FeatureConfig(n_mels=64)) == train  # stft: unused
    monkeypatch.setattr(config_module, "FEATURE_CODE_VERSION", 999)
    assert cache_dir(tiny_corpus, "train", CFG) != train


def test_statistics_from_the_cache_equal_those_from_audio(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    notes = read_split(tiny_corpus, "train")[:20]
    cache = ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    direct = compute_stats(notes, CFG, progress=False)
    cached = compute_stats(notes, CFG, progress=False, cache=cache)
    np.testing.assert_array_equal(cached.mean, direct.mean)
    np.testing.assert_array_equal(cached.std, direct.std)
    assert cached.fingerprint == direct.fingerprint


def test_two_processes_filling_one_cache_both_succeed(tmp_path: Path) -> None:
    # Parallel sweep workers fill the same cache at once: each file is written atomically, so
    # both see complete files and the result equals a single process's.
    import subprocess
    import sys
    import textwrap

    notes = write_notes(tmp_path / "wavs", 12)
    alone = ensure_cached(notes, CFG, tmp_path / "alone", progress=False)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from nsynth_research.instruments.config import FeatureConfig
        from nsynth_research.instruments.features.cache import ensure_cached
        from tests.instruments.fakes import note_at
        paths = sorted(Path({str(tmp_path / "wavs")!r}).glob("*.wav"))
        notes = [note_at(p.stem, str(p), i % 11) for i, p in enumerate(paths)]
        ensure_cached(notes, FeatureConfig(), Path({str(tmp_path / "shared")!r}), progress=False)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    shared = sorted((tmp_path / "shared").iterdir())
    assert [p.name for p in shared] == sorted(alone.path_for(n).name for n in notes)
    for note in notes:
        path = tmp_path / "shared" / alone.path_for(note).name
        np.testing.assert_array_equal(stored(path), stored(alone.path_for(note)))
