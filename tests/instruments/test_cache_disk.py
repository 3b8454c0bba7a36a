"""Caches that fit the disk: one dtype per front-end chosen by its size, kept for a study's
whole search, and `clean-cache` reclaiming them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nsynth_research.instruments.features.cache as cache_module
from nsynth_research.cli import main
from nsynth_research.instruments.config import FeatureConfig, load_config
from nsynth_research.instruments.features.cache import cache_dir, choose_cache, ensure_cached
from nsynth_research.instruments.features.cleanup import clean_cache
from nsynth_research.instruments.features.rows import CACHE_DIR
from nsynth_research.instruments.training import for_trial, prepare_data

STFT = FeatureConfig()
MEL64 = FeatureConfig(kind="logmel", n_mels=64)
GiB = 2**30


class Usage:
    def __init__(self, free: int) -> None:
        self.free = free


def free_disk(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda _p: Usage(free))


@pytest.fixture
def corpus(tiny_corpus: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny corpus (caches get written under it)."""
    root = tmp_path / "nsynth-gm"
    shutil.copytree(tiny_corpus, root, ignore=shutil.ignore_patterns(CACHE_DIR, "stats"))
    return root


def test_the_choice_follows_each_front_ends_size(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 50k notes on 40 GiB free: STFT as float32 (25.8 GB) would take more than half the
    # disk, as float16 (12.9 GB) it fits; a 64-band log-mel front-end (3.2 GB) stays exact.
    free_disk(monkeypatch, 40 * GiB)
    assert choose_cache(tmp_path, 50_000, STFT) == "float16"
    assert choose_cache(tmp_path, 50_000, MEL64) == "float32"
    # Full NSynth (train + valid) on 60 GiB: no STFT cache at all, 64 log-mel bands exact
    # (19.4 GB), 128 bands (38.8 GB as float32) halved.
    free_disk(monkeypatch, 60 * GiB)
    assert choose_cache(tmp_path, 301_883, STFT) is None
    assert choose_cache(tmp_path, 301_883, MEL64) == "float32"
    assert choose_cache(tmp_path, 301_883, FeatureConfig(kind="logmel")) == "float16"


def test_a_front_end_keeps_the_dtype_it_started_with(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nsynth_research.instruments.data.reader import read_split

    notes = read_split(corpus, "train")[:3]
    assert choose_cache(corpus, 1000, MEL64) == "float32"
    ensure_cached(notes, MEL64, cache_dir(corpus, "train", MEL64, "float32"), progress=False)
    # The disk has filled up since: by size alone float16 would be picked now.
    per16, headroom = MEL64.frames * MEL64.bins * 2, cache_module._HEADROOM_BYTES
    free_disk(monkeypatch, 2 * (1000 * per16 + headroom) + 1000 * per16)
    assert choose_cache(corpus, 1000, MEL64, splits=()) == "float16"
    assert choose_cache(corpus, 1000, MEL64) == "float32"
    # And when even the rest no longer fits: no cache, never a second one in float16.
    free_disk(monkeypatch, headroom + 100 * per16)
    assert choose_cache(corpus, 1000, MEL64) is None
    assert choose_cache(corpus, 1000, STFT) is None  # other front-ends: by size, as ever


def test_a_study_fills_one_cache_per_front_end(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = load_config(
        None,
        [
            f"data.root={corpus}",
            "data.feature_cache=auto",
            "data.max_notes_per_split=6",
            "model.first_kernel=[3,64]",
        ],
    )
    data = prepare_data(base, progress=False)
    mel = base.model_copy(update={"features": MEL64})
    assert for_trial(data, mel).caches["train"].dtype == "float32"
    # The disk fills up between trials: by size alone the next trial would pick float16.
    n = len(data.train) + len(data.valid)
    headroom = cache_module._HEADROOM_BYTES
    per16 = MEL64.frames * MEL64.bins * 2
    free_disk(monkeypatch, 2 * (n * per16 + headroom) + n * per16)
    assert choose_cache(corpus, n, MEL64, splits=()) == "float16"
    for _trial in range(2):
        assert for_trial(data, mel).caches["train"].dtype == "float32"
    folders = sorted(p.name for p in (corpus / CACHE_DIR).iterdir())
    assert len(folders) == 4, folders  # train + valid, for each of the two front-ends


def test_clean_cache_removes_every_cache_and_says_how_much(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nsynth_research.instruments.data.reader import read_split

    notes = read_split(corpus, "train")[:3]
    for cfg, dtype in ((STFT, "float32"), (MEL64, "float16")):
        ensure_cached(notes, cfg, cache_dir(corpus, "train", cfg, dtype), progress=False)
    stale = corpus / CACHE_DIR / "train-0123456789abcdef"  # a folder of another layout
    stale.mkdir()
    (stale / "note.f32").write_bytes(b"\0" * 8192)
    stats = corpus / "stats" / "train-x.npz"
    stats.parent.mkdir()
    stats.write_bytes(b"kept")
    expected = 3 * STFT.frames * STFT.bins * 4 + 3 * MEL64.frames * MEL64.bins * 2 + 8192

    assert main(["clean-cache", "--root", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "in 3 feature caches" in out, out
    assert list((corpus / CACHE_DIR).iterdir()) == [] and stats.exists()
    reported = float(out.split("reclaimed ")[1].split(" MiB")[0])
    assert expected / 2**20 <= reported <= expected / 2**20 + 1  # blocks, plus small files
    assert clean_cache(corpus).total == 0  # nothing left: says so


def test_clean_cache_without_a_data_root_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["clean-cache", "--root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no data root at") and err.count("\n") == 1
