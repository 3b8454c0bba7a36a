"""The TensorFlow features must equal the librosa reference, on real notes and on hard signals."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import tensorflow as tf

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, FeatureConfig
from nsynth_research.instruments.features.spectrogram import librosa_features, tf_features

CFG = FeatureConfig()
TOL = 1e-3


def _pcm16(x: np.ndarray) -> np.ndarray:
    """What a 16-bit WAV file would hold: real notes have this quantisation noise floor."""
    return (np.round(np.clip(x, -1, 1) * 32767) / 32768).astype(np.float32)


def synthetic_signals() -> dict[str, np.ndarray]:
    t = np.arange(NUM_SAMPLES) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    impulse = np.zeros(NUM_SAMPLES)
    impulse[1000] = 1.0
    sweep = np.sin(2 * np.pi * (30 * t + 0.5 * (7900 - 30) / 4 * t**2))
    return {
        # A pure tone is the hard case: near-empty bins between partials, where the steep
        # log(1 + 1000x) magnifies any FFT rounding.
        "sine_440": _pcm16(0.9 * np.sin(2 * np.pi * 440 * t)),
        "decaying_bass": _pcm16(np.sin(2 * np.pi * 41.2 * t) * np.exp(-2 * t)),
        "sweep": _pcm16(0.5 * sweep),
        "noise": _pcm16(0.3 * rng.standard_normal(NUM_SAMPLES)),
        "square_full_scale": _pcm16(np.sign(np.sin(2 * np.pi * 100 * t))),
        "very_quiet": _pcm16(3e-4 * np.sin(2 * np.pi * 3000 * t)),
        "impulse": impulse.astype(np.float32),
        "silence": np.zeros(NUM_SAMPLES, np.float32),
        "unquantised_float": (0.7 * np.sin(2 * np.pi * 1234.5 * t)).astype(np.float32),
    }


def test_reference_is_the_classic_definition_with_zero_padding() -> None:
    # The project's reference, spelled out independently: centred STFT with zero padding at
    # the edges, periodic Hann, log(1 + scale*|S|), time-major. Reflect padding (librosa's
    # old default) gives different edge frames, so a drift of the reference is caught.
    audio = synthetic_signals()["decaying_bass"]
    spec = librosa.stft(audio, n_fft=1024, hop_length=256, center=True, pad_mode="constant")
    expected = np.log1p(1000.0 * np.abs(spec)).T
    got = librosa_features(audio, CFG)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    reflect = librosa.stft(audio, n_fft=1024, hop_length=256, center=True, pad_mode="reflect")
    assert np.abs(got[0] - np.log1p(1000.0 * np.abs(reflect)).T[0]).max() > 0.1


def test_reference_shape_and_centring() -> None:
    feats = librosa_features(synthetic_signals()["sine_440"], CFG)
    assert feats.shape == (CFG.frames, CFG.bins) == (251, 513)
    assert feats.dtype == np.float32
    # Centred frames: frame k is centred on sample k*hop, where the periodic Hann window is 1,
    # so an impulse there gives a flat spectrum of log(1 + 1000) in that frame.
    impulse = np.zeros(NUM_SAMPLES, np.float32)
    impulse[10 * CFG.hop_length] = 1.0
    frame = librosa_features(impulse, CFG)[10]
    np.testing.assert_allclose(frame, np.log1p(CFG.log_scale), rtol=1e-6)


def test_silence_is_zero() -> None:
    silence = np.zeros(NUM_SAMPLES, np.float32)
    assert not librosa_features(silence, CFG).any()
    assert not tf_features(silence, CFG).numpy().any()


def test_tf_matches_librosa_on_synthetic_signals() -> None:
    signals = synthetic_signals()
    batch = tf_features(np.stack(list(signals.values())), CFG).numpy()
    assert batch.shape == (len(signals), 251, 513)
    assert batch.dtype == np.float32
    for got, (name, audio) in zip(batch, signals.items(), strict=True):
        err = np.abs(got - librosa_features(audio, CFG)).max()
        assert err < TOL, f"{name}: max abs difference {err}"


def test_tf_matches_librosa_on_real_notes(tiny_corpus: Path) -> None:
    from nsynth_research.instruments.data.audio import iter_audio
    from nsynth_research.instruments.data.reader import read_split

    notes = read_split(tiny_corpus, "train")
    # Spread over the corpus so several families and registers are covered.
    picked = notes[:: max(1, len(notes) // 12)][:12]
    families = {n.family for n in picked}
    assert len(families) >= 3, families
    audio = [a for _, a in iter_audio(picked)]
    batch = tf_features(tf.constant(np.stack(audio)), CFG).numpy()
    for note, a, got in zip(picked, audio, batch, strict=True):
        assert got.shape == (251, 513)
        err = np.abs(got - librosa_features(a, CFG)).max()
        assert err < TOL, f"{note.note_str}: max abs difference {err}"


def test_tf_features_keeps_leading_dims() -> None:
    rng = np.random.default_rng(1)
    audio = _pcm16(0.2 * rng.standard_normal((2, 3, NUM_SAMPLES)))
    got = tf_features(audio, CFG).numpy()
    assert got.shape == (2, 3, 251, 513)
    np.testing.assert_allclose(got[1, 2], librosa_features(audio[1, 2], CFG), atol=TOL)


def test_other_config_follows_its_shape() -> None:
    cfg = FeatureConfig(n_fft=512, hop_length=128, log_scale=100.0)
    audio = synthetic_signals()["sweep"]
    ref = librosa_features(audio, cfg)
    assert ref.shape == (cfg.frames, cfg.bins) == (501, 257)
    np.testing.assert_allclose(tf_features(audio[None], cfg).numpy()[0], ref, atol=TOL)


@pytest.mark.parametrize("shape", [(NUM_SAMPLES - 1,), (2, NUM_SAMPLES), ()])
def test_reference_rejects_wrong_audio(shape: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="64000 samples"):
        librosa_features(np.zeros(shape, np.float32), CFG)
