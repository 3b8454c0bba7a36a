"""The fast feature paths (float32 FFT, log-mel) against the librosa reference.

Parity is judged where it matters, on features normalised by train statistics as the model
sees them: a float32 FFT's rounding lands in near-empty bins, where 16-bit PCM noise already
moves the raw log values by more, so raw bit-for-bit closeness in silence is not the bar.
Stated tolerances, in units of a (frame, bin)'s train standard deviation: float32 STFT at most
0.1 anywhere (0.02 measured on 100 default-corpus notes) and 1e-4 on average; log-mel (whose
band sums average the rounding away) 5e-3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nsynth_research.instruments.config import FeatureConfig, ModelConfig, check_model_fits
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features import cache as cache_module
from nsynth_research.instruments.features.cache import cache_dir, choose_cache, ensure_cached
from nsynth_research.instruments.features.spectrogram import librosa_features, tf_features

TOLERANCE = {  # (kind, precision) -> (max, mean) |normalised difference|
    ("stft", "float32"): (0.1, 1e-4),
    ("logmel", "float32"): (5e-3, 1e-5),
    ("logmel", "float64"): (1e-4, 1e-6),
}


@pytest.mark.parametrize(("kind", "precision"), list(TOLERANCE))
def test_fast_paths_match_librosa_on_normalised_features(
    tiny_corpus: Path, kind: str, precision: str
) -> None:
    cfg = FeatureConfig(kind=kind, fft_precision=precision)
    notes = read_split(tiny_corpus, "train")[:24]
    audio = np.stack([load_audio(n.path) for n in notes])
    ref = np.stack([librosa_features(a, cfg) for a in audio])
    got = tf_features(audio, cfg).numpy()
    assert got.shape == ref.shape == (len(notes), cfg.frames, cfg.bins)
    # (got - mean) / s - (ref - mean) / s: the mean cancels, the std scales the error.
    diff = np.abs((got - ref) / (ref.std(0) + cfg.norm_eps))
    worst, average = TOLERANCE[(kind, precision)]
    assert diff.max() <= worst and diff.mean() <= average, (diff.max(), diff.mean())


def test_logmel_shape_follows_the_kind() -> None:
    cfg = FeatureConfig(kind="logmel", n_mels=64)
    assert (cfg.frames, cfg.bins) == (251, 64)
    assert FeatureConfig().bins == 513
    with pytest.raises(ValueError, match="n_mels"):
        FeatureConfig(kind="logmel", n_mels=600)
    # The model's first-kernel check reads the feature height from the kind.
    with pytest.raises(ValueError, match="exceeds the 64 frequency bins"):
        check_model_fits(ModelConfig(), cfg)
    check_model_fits(ModelConfig(first_kernel=(3, 64)), cfg)


def test_every_feature_setting_gets_its_own_cache(tiny_corpus: Path) -> None:
    settings = [
        FeatureConfig(),
        FeatureConfig(fft_precision="float32"),
        FeatureConfig(kind="logmel"),
        FeatureConfig(kind="logmel", n_mels=64),
    ]
    dirs = {cache_dir(tiny_corpus, "train", cfg) for cfg in settings}
    assert len(dirs) == len(settings)


def test_float16_cache_reads_back_the_features_rounded(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = FeatureConfig()
    notes = read_split(tiny_corpus, "train")[:4]
    assert cache_dir(tiny_corpus, "train", cfg, "float16") != cache_dir(tiny_corpus, "train", cfg)
    half = ensure_cached(notes, cfg, tmp_path / "f16", progress=False, dtype="float16")
    assert half.store.data.stat().st_size == len(notes) * cfg.frames * cfg.bins * 2
    batches = half.batches(notes, batch_size=3, shuffle=False, seed=0)
    read = np.concatenate([x.numpy() for x, _ in batches])
    exact = tf_features(np.stack([load_audio(n.path) for n in notes]), cfg).numpy()
    np.testing.assert_allclose(read, exact, rtol=2**-10, atol=1e-6)


def test_a_float16_cache_normalises_like_the_graph_on_its_rounded_rows(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    cfg = FeatureConfig()
    notes = read_split(tiny_corpus, "train")[:5]
    half = ensure_cached(notes, cfg, tmp_path / "f16", progress=False, dtype="float16")
    rng = np.random.default_rng(0)
    mean = rng.uniform(0, 5, (cfg.frames, cfg.bins)).astype(np.float32)
    denom = rng.uniform(0.5, 2, (cfg.frames, cfg.bins)).astype(np.float32)
    batches = half.batches(notes, batch_size=2, shuffle=False, seed=0, normalise=(mean, denom))
    assert batches.element_spec[0].shape.as_list() == [None, cfg.frames, cfg.bins, 1]
    read = np.concatenate([x.numpy() for x, _ in batches])
    stored = half.store.mapped()[[half.rows[n.note_str] for n in notes]]
    expected = (stored.astype(np.float32) - mean) / denom
    assert read.dtype == np.float32
    np.testing.assert_allclose(read[..., 0], expected, rtol=1e-6, atol=1e-6)


def test_auto_cache_picks_by_free_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = FeatureConfig()
    per_note = cfg.frames * cfg.bins * 4
    for free, notes, expected in [
        (100 * 2**30, 1000, "float32"),  # 0.5 GB of 100 GB free
        (200 * 2**30, 289_205, "float16"),  # full NSynth train: 145 GB as float32
        (50 * 2**30, 289_205, None),
    ]:
        monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda _p, f=free: Usage(f))
        assert choose_cache(tmp_path, notes, cfg) == expected, (free, notes, per_note)


class Usage:
    def __init__(self, free: int) -> None:
        self.free = free
