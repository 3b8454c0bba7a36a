"""Hearing a dream: normalised input -> log-magnitude -> |STFT| -> Griffin-Lim -> 4 s WAV, and
back through the model's own features for the round trip.

The round trip is the test of a dream: a pattern the model really hears survives losing its
phase and being re-analysed from audio; an adversarial artefact of the input space (a value
no STFT of any signal has) does not. Every WAV is at or below full scale as a whole signal:
Griffin-Lim's output is turned down as a whole when its peak is over 1 (never clipped), the
gain is returned so the run records it, and the file written is the file classified.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import tensorflow as tf

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, FeatureConfig
from nsynth_research.instruments.features.inverse import griffin_lim, inverse_features
from nsynth_research.instruments.features.spectrogram import tf_features
from nsynth_research.instruments.features.stats import FeatureStats

#: Peak a signal over full scale is turned down to (a hair under 1, so a lossy copy of it
#: does not clip either).
LIMITED_PEAK = 0.99


def denormalise(x: np.ndarray, stats: FeatureStats, cfg: FeatureConfig) -> np.ndarray:
    """The inverse of `FeatureStats.normaliser`: normalised input -> log-magnitude features."""
    return np.asarray(x, np.float64) * (stats.std + cfg.norm_eps) + stats.mean


def normalised_features(audio: np.ndarray, stats: FeatureStats, cfg: FeatureConfig) -> np.ndarray:
    """What the model sees of (n, 64000) audio: the training features and normalisation."""
    feats = tf_features(tf.constant(np.asarray(audio, np.float32)), cfg)
    return stats.normaliser(cfg.norm_eps)(feats).numpy()


def inaudible(cfg: FeatureConfig) -> str | None:
    """Why inputs of these features cannot be heard, or None when they can."""
    if cfg.kind == "pcen":
        return (
            "PCEN features divide out each band's recent level, so no signal is recovered "
            "from them here"
        )
    return None


def dream_audio(
    x: np.ndarray, stats: FeatureStats, cfg: FeatureConfig, *, n_iter: int, seed: int
) -> np.ndarray:
    """Normalised inputs (n, frames, bins) as (n, 64000) samples of 16 kHz audio, as
    Griffin-Lim gives them (not yet limited: see `to_full_scale`); input i is seeded seed + i.
    """
    magnitude = inverse_features(denormalise(x, stats, cfg), cfg)
    return griffin_lim(magnitude, cfg, n_iter=n_iter, seed=seed)


def to_full_scale(audio: np.ndarray) -> tuple[np.ndarray, float]:
    """`audio` turned down as a whole if its peak is over 1, and the gain applied in dB
    (0 when it was within full scale)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 1.0:
        return np.asarray(audio, np.float32), 0.0
    gain = LIMITED_PEAK / peak
    return (np.asarray(audio, np.float64) * gain).astype(np.float32), float(20 * np.log10(gain))


def write_wav(path: Path, audio: np.ndarray) -> Path:
    """A 16 kHz mono 32-bit float WAV; refuses a signal over full scale."""
    audio = np.asarray(audio, np.float32)
    if audio.size and float(np.max(np.abs(audio))) > 1.0:
        raise ValueError(f"{path}: peak over full scale; pass it through to_full_scale first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    return path


def read_wav(path: Path) -> np.ndarray:
    """A WAV written by `write_wav`, checked to be a 16 kHz 4 s mono note."""
    audio, rate = sf.read(path, dtype="float32", always_2d=False)
    if rate != SAMPLE_RATE or audio.shape != (NUM_SAMPLES,):
        raise DataError(
            f"{path}: expected {NUM_SAMPLES} mono samples at {SAMPLE_RATE} Hz, "
            f"got shape {audio.shape} at {rate} Hz"
        )
    return audio
