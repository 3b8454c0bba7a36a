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
from nsynth_research.instruments.features.cache import FeatureCache, cache_dir, ensure_cached
from nsynth_research.instruments.features.spectrogram import librosa_features
from nsynth_research.instruments.features.stats import compute_stats
from tests.instruments.fakes import build_archive, note_at, write_notes

CFG = FeatureConfig()
NBYTES = CFG.frames * CFG.bins * 4


def stored(cache: FeatureCache, name: str) -> np.ndarray:
    """The row the cache holds for a note, read from its file as written."""
    row = cache.rows[name]
    with open(cache.store.data, "rb") as handle:
        handle.seek(row * NBYTES)
        return np.frombuffer(handle.read(NBYTES), "<f4").reshape(CFG.frames, CFG.bins)


def test_rows_hold_each_notes_features(tmp_path: Path) -> None:
    notes = write_notes(tmp_path / "wavs", 5)
    cache = ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    assert cache.store.data.stat().st_size == 5 * NBYTES
    assert sorted(cache.rows.values()) == list(range(5))
    for note in notes:
        ref = librosa_features(load_audio(note.path), CFG)
        np.testing.assert_allclose(stored(cache, note.note_str), ref, atol=1e-3)


def test_rerun_writes_nothing_and_repairs_damage(tmp_path: Path) -> None:
    notes = write_notes(tmp_path / "wavs", 4)
    cache = ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    data, names = cache.store.data, cache.store.names
    before = data.stat().st_mtime_ns, names.stat().st_mtime_ns
    good = {n.note_str: stored(cache, n.note_str).copy() for n in notes}
    time.sleep(0.01)
    ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    assert (data.stat().st_mtime_ns, names.stat().st_mtime_ns) == before

    # A truncated data file (a disk that filled up under another tool) loses its last rows
    # and only those are recomputed; a killed writer's unnamed bytes and stale temporaries
    # are cut off and removed.
    last = max(cache.rows, key=cache.rows.get)
    with open(data, "r+b") as handle:
        handle.truncate(3 * NBYTES + 1000)
    stale = tmp_path / "cache" / ".x.abc.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    repaired = ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    assert data.stat().st_size == 4 * NBYTES
    assert names.read_text().splitlines() == sorted(cache.rows, key=cache.rows.get)
    assert repaired.rows == cache.rows and not stale.exists()
    for name, features in good.items():
        np.testing.assert_array_equal(stored(repaired, name), features)

    # Bytes past the last named row (a writer killed before naming them) are dropped before
    # the next rows are appended, so rows and names stay in step.
    with open(data, "ab") as handle:
        handle.write(b"\x01" * (NBYTES // 2))
    half_written = ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    batches = half_written.batches(notes, batch_size=4, shuffle=False, seed=0)
    read = next(iter(batches))[0].numpy()  # readable, the unnamed tail left alone
    np.testing.assert_array_equal(read[1], good[notes[1].note_str])
    more = write_notes(tmp_path / "more", 2, seed=9)
    more = [note_at(f"x{i}", n.path, n.family) for i, n in enumerate(more)]
    grown = ensure_cached([*notes, *more], CFG, tmp_path / "cache", progress=False)
    assert data.stat().st_size == 6 * NBYTES and grown.rows[last] == cache.rows[last]
    np.testing.assert_array_equal(
        stored(grown, "x1"),
        stored(ensure_cached(more, CFG, tmp_path / "alone", progress=False), "x1"),
    )


def test_a_killed_fill_keeps_the_rows_it_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nsynth_research.instruments.features.cache as cache_module

    notes = write_notes(tmp_path / "wavs", 6)
    monkeypatch.setattr(cache_module, "_COMMIT_SECONDS", 0.0)  # commit after every batch
    real = cache_module.audio_batches

    def dies_after_two_batches(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(cache_module, "audio_batches", dies_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        ensure_cached(notes, CFG, tmp_path / "cache", batch_size=2, progress=False)
    monkeypatch.undo()
    kept = ensure_cached(notes[:4], CFG, tmp_path / "cache", progress=False)
    assert kept.store.data.stat().st_size == 4 * NBYTES  # nothing recomputed
    full = ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    for note in notes:
        ref = librosa_features(load_audio(note.path), CFG)
        np.testing.assert_allclose(stored(full, note.note_str), ref, atol=1e-3)


def test_archived_notes_land_in_their_own_rows(tmp_path: Path) -> None:
    src = write_notes(tmp_path / "wavs", 5, seed=4)
    packed = build_archive(tmp_path, src)
    cache = ensure_cached(packed[::-1], CFG, tmp_path / "cache", progress=False)
    for note, original in zip(packed, src, strict=True):
        ref = librosa_features(load_audio(original.path), CFG)
        np.testing.assert_allclose(stored(cache, note.note_str), ref, atol=1e-3)


def test_full_disk_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = write_notes(tmp_path / "wavs", 3)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage._replace(free=2 * NBYTES))
    with pytest.raises(DataError, match=r"data.feature_cache=false") as err:
        ensure_cached(notes, CFG, tmp_path / "cache", progress=False)
    assert "3 notes" in str(err.value)
    assert not list((tmp_path / "cache").glob("rows.*"))


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
    shared = ensure_cached(notes, CFG, tmp_path / "shared", progress=False)
    assert shared.store.data.stat().st_size == len(notes) * NBYTES  # each note stored once
    assert sorted(shared.rows) == sorted(alone.rows)
    for note in notes:
        np.testing.assert_array_equal(stored(shared, note.note_str), stored(alone, note.note_str))
