"""The inverse of the features, and Griffin-Lim back to a 4 s 16 kHz note.

Tolerances, on a 5-partial decaying 220 Hz tone:
- the log is inverted exactly: inverse(features) equals librosa's |STFT| within 1e-5 of its
  peak (float32 features);
- log-mel bands are spread back by the batched non-negative least squares so that summing
  them into bands again gives the band magnitudes within 1 %;
- Griffin-Lim loses only the phase: the spectral convergence ||S' - S|| / ||S|| of the
  magnitudes is below 0.1 and the re-computed features are within 0.1 of the originals on
  average, as close as librosa's own `griffinlim` gets with the same iterations.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, FeatureConfig
from nsynth_research.instruments.features.inverse import (
    griffin_lim,
    inverse_features,
    mel_to_stft,
)
from nsynth_research.instruments.features.spectrogram import (
    feature_ceiling,
    librosa_features,
    mel_filters,
)

CFG = FeatureConfig()


@pytest.fixture(scope="module")
def note() -> np.ndarray:
    t = np.arange(NUM_SAMPLES) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 6)) * np.exp(-t)
    return (0.3 * tone).astype(np.float32)


def _stft(audio: np.ndarray) -> np.ndarray:
    spec = librosa.stft(audio, n_fft=CFG.n_fft, hop_length=CFG.hop_length, pad_mode="constant")
    return np.abs(spec).T


def test_inverse_undoes_the_log_exactly(note: np.ndarray) -> None:
    magnitude = _stft(note)
    back = inverse_features(librosa_features(note, CFG), CFG)
    assert back.shape == (CFG.frames, CFG.bins)
    assert np.max(np.abs(back - magnitude)) <= 1e-5 * magnitude.max()


def test_inverse_clips_impossible_negative_features_to_silence() -> None:
    feats = np.full((CFG.frames, CFG.bins), -3.0)
    assert np.all(inverse_features(feats, CFG) == 0.0)


def test_logmel_inverse_gives_back_the_band_magnitudes(note: np.ndarray) -> None:
    cfg = FeatureConfig(kind="logmel")
    bands = np.expm1(librosa_features(note, cfg).astype(np.float64)) / cfg.log_scale
    linear = inverse_features(librosa_features(note, cfg), cfg)
    assert linear.shape == (cfg.frames, cfg.n_fft // 2 + 1)
    assert np.all(linear >= 0)
    again = linear @ mel_filters(cfg).T
    assert np.linalg.norm(again - bands) / np.linalg.norm(bands) < 0.01


def test_pcen_features_have_no_inverse() -> None:
    with pytest.raises(ValueError, match="PCEN"):
        inverse_features(np.zeros((3, 4)), FeatureConfig(kind="pcen"))


def test_griffin_lim_round_trip_keeps_the_magnitude_as_librosa_does(note: np.ndarray) -> None:
    feats = librosa_features(note, CFG)
    magnitude = inverse_features(feats, CFG)
    (audio,) = griffin_lim(magnitude[None], CFG, n_iter=32, seed=0)
    assert audio.shape == (NUM_SAMPLES,) and audio.dtype == np.float32
    reference = librosa.griffinlim(
        magnitude.T.astype(np.float32), n_iter=32, hop_length=CFG.hop_length, n_fft=CFG.n_fft,
        center=True, pad_mode="constant", length=NUM_SAMPLES, random_state=0,
    )  # fmt: skip
    original = _stft(note)
    ours = np.linalg.norm(_stft(audio) - original) / np.linalg.norm(original)
    theirs = np.linalg.norm(_stft(reference) - original) / np.linalg.norm(original)
    assert ours < 0.1 and ours <= 1.5 * theirs
    assert np.mean(np.abs(librosa_features(audio, CFG) - feats)) < 0.1


def test_feature_ceiling_bounds_a_full_scale_signal() -> None:
    t = np.arange(NUM_SAMPLES) / SAMPLE_RATE
    loud = np.sign(np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    for cfg in (CFG, FeatureConfig(kind="logmel")):
        assert librosa_features(loud, cfg).max() <= feature_ceiling(cfg)
        assert (
            librosa_features(np.ones(NUM_SAMPLES, np.float32), cfg).max()
            <= feature_ceiling(cfg) + 1e-4
        )


def test_batched_mel_inverse_gives_back_the_band_magnitudes(note: np.ndarray) -> None:
    cfg = FeatureConfig(kind="logmel", n_mels=64)
    bands = np.expm1(librosa_features(note, cfg).astype(np.float64)) / cfg.log_scale
    linear = mel_to_stft(np.stack([bands, 0.5 * bands]), cfg)
    assert linear.shape == (2, cfg.frames, cfg.n_fft // 2 + 1) and np.all(linear >= 0)
    again = linear @ mel_filters(cfg).T
    for got, want in zip(again, (bands, 0.5 * bands), strict=True):
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.01  # measured 8e-4


def test_batched_griffin_lim_keeps_the_magnitude_and_its_seed(note: np.ndarray) -> None:
    magnitude = inverse_features(librosa_features(note, CFG), CFG)
    audio = griffin_lim(np.stack([magnitude, magnitude]), CFG, n_iter=32, seed=3)
    assert audio.shape == (2, NUM_SAMPLES) and audio.dtype == np.float32
    rebuilt = _stft(audio[0])
    assert np.linalg.norm(rebuilt - magnitude) / np.linalg.norm(magnitude) < 0.1
    assert not np.array_equal(audio[0], audio[1])  # input i starts from phase seed + i
    again = griffin_lim(magnitude[None], CFG, n_iter=32, seed=4)
    np.testing.assert_array_equal(again[0], audio[1])
