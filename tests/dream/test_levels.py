"""Levels: the frame-energy bound that keeps a dream's audio plausible, the full-scale limit
of every WAV, and BS.1770 loudness for the page's matched players."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from nsynth_research.dream.ascent import Bounds, frame_energy
from nsynth_research.dream.audio import dream_audio, normalised_features, to_full_scale
from nsynth_research.dream.loudness import integrated_loudness, match_loudness
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, FeatureConfig
from nsynth_research.instruments.features.spectrogram import librosa_features
from nsynth_research.instruments.features.stats import FeatureStats

CFG = FeatureConfig()
T = np.arange(NUM_SAMPLES) / SAMPLE_RATE


@pytest.fixture(scope="module")
def note() -> np.ndarray:
    """A loud decaying 5-partial tone peaking near full scale."""
    tone = sum(np.sin(2 * np.pi * 220 * k * T) / k for k in range(1, 6)) * np.exp(-T)
    return (0.95 * tone / np.max(np.abs(tone))).astype(np.float32)


@pytest.fixture(scope="module")
def stats() -> FeatureStats:
    shape = (CFG.frames, CFG.bins)
    return FeatureStats.from_arrays(np.full(shape, 2.0), np.full(shape, 1.5), 1, CFG)


def _limits(note: np.ndarray) -> tuple[float, float]:
    energy = frame_energy(librosa_features(note, CFG), CFG.log_scale)
    return float(energy.max()), float(energy.sum())


def test_energy_limits_hold_and_leave_real_notes_alone(note, stats) -> None:
    loudest, whole = _limits(note)
    bounds = Bounds.of(stats, CFG, loudest, whole)
    real = normalised_features(note[None], stats, CFG)
    np.testing.assert_allclose(bounds.apply(tf.constant(real)).numpy(), real, atol=1e-5)
    ceiling = np.broadcast_to(bounds.high, real.shape).copy()
    assert np.all(bounds.frame_energies(ceiling) > 100 * loudest)  # the cell cap alone
    one_frame = np.where(np.arange(CFG.frames)[:, None] == 100, ceiling[0], bounds.low)[None]
    for x in (ceiling, one_frame):
        limited = bounds.apply(tf.constant(x, tf.float32)).numpy()
        assert np.all(bounds.frame_energies(limited) <= loudest * (1 + 1e-3))
        assert bounds.frame_energies(limited).sum() <= whole * (1 + 1e-3)


def test_the_energy_limits_keep_resynthesis_near_full_scale(note, stats) -> None:
    """Every cell at its ceiling is over a hundred times full scale once resynthesised;
    bounded by the loudest real frame and note, it is about as loud as that note."""
    ceiling = np.broadcast_to(Bounds.of(stats, CFG, None).high, (CFG.frames, CFG.bins)).copy()
    limited = Bounds.of(stats, CFG, *_limits(note)).apply(tf.constant(ceiling[None])).numpy()[0]
    audio = dream_audio(np.stack([ceiling, limited]), stats, CFG, n_iter=8, seed=0)
    peaks = [float(np.max(np.abs(a))) for a in audio]
    assert peaks[0] > 50 and peaks[1] < 1.5, peaks
    rms = [float(np.sqrt(np.mean(a**2))) for a in (note, audio[1])]
    assert rms[1] == pytest.approx(rms[0], rel=0.2)


def test_full_scale_limit_turns_down_only_what_is_over() -> None:
    quiet = (0.5 * np.sin(2 * np.pi * 440 * T)).astype(np.float32)
    same, gain = to_full_scale(quiet)
    assert gain == 0.0 and np.array_equal(same, quiet)
    loud = 3.0 * quiet
    limited, gain = to_full_scale(loud)
    assert np.max(np.abs(limited)) <= 1.0
    assert gain == pytest.approx(20 * np.log10(0.99 / 1.5))
    np.testing.assert_allclose(limited, loud * 10 ** (gain / 20), rtol=1e-6)


def test_loudness_of_a_full_scale_1khz_sine_is_minus_3_lufs() -> None:
    # BS.1770's calibration point: a 0 dBFS 997 Hz sine reads -3.01 LKFS.
    sine = np.sin(2 * np.pi * 997 * T)
    assert integrated_loudness(sine) == pytest.approx(-3.01, abs=0.1)
    assert integrated_loudness(0.1 * sine) == pytest.approx(-23.01, abs=0.1)
    assert integrated_loudness(np.zeros(NUM_SAMPLES)) == float("-inf")


def test_matched_copies_play_equally_loud_without_clipping(note) -> None:
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal(NUM_SAMPLES)).astype(np.float32)
    copies = [match_loudness(a, -23.0) for a in (note, 0.1 * note, noise)]
    for c in copies:
        assert integrated_loudness(c.audio) == pytest.approx(-23.0, abs=0.05)
        assert np.max(np.abs(c.audio)) <= 0.99 and not c.peak_limited
    spike = np.zeros(NUM_SAMPLES, np.float32)
    spike[::8000] = 1.0  # nearly all peak, no loudness: cannot reach -23 LUFS unclipped
    limited = match_loudness(spike, -23.0)
    assert limited.peak_limited and np.max(np.abs(limited.audio)) <= 0.99 + 1e-6
    silent = match_loudness(np.zeros(NUM_SAMPLES, np.float32), -23.0)
    assert silent.gain_db == 0.0 and not np.any(silent.audio)


def test_hear_turns_an_over_full_scale_dream_down_and_logs_the_gain(tmp_path, stats) -> None:
    from nsynth_research.dream.dreams import Dream
    from nsynth_research.dream.report import Decoder, hear
    from nsynth_research.instruments.config import ModelConfig
    from nsynth_research.instruments.model import build_model

    ceiling = np.broadcast_to(Bounds.of(stats, CFG, None).high, (CFG.frames, CFG.bins))
    quiet = np.zeros((CFG.frames, CFG.bins), np.float32)  # the train mean: far below 1
    dreams = [Dream("loud", "", ceiling.copy(), "channel"), Dream("quiet", "", quiet, "channel")]
    model = build_model(ModelConfig(filters=(4,), dense=(8,)), CFG)
    audio = hear(dreams, Decoder(model, stats, CFG, 8, 0), tmp_path)
    loud, quiet_facts = dreams[0].extra, dreams[1].extra
    assert loud["peak_raw"] > 10 and loud["gain_db"] < 0
    assert loud["peak"] == pytest.approx(loud["peak_raw"] * 10 ** (loud["gain_db"] / 20))
    assert quiet_facts["gain_db"] == 0.0 and quiet_facts["peak"] == quiet_facts["peak_raw"] < 1
    for d in dreams:
        written, _ = sf.read(tmp_path / f"{d.key}.wav", dtype="float32")
        assert np.max(np.abs(written)) <= 1.0
        np.testing.assert_array_equal(written, audio[d.key])
        assert d.extra["heard_as"]  # the written file was classified (the round trip)
