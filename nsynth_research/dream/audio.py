"""Hearing a dream: normalised input -> log-magnitude -> |STFT| -> Griffin-Lim -> 4 s WAV, and
back through the model's own features for the round trip.

The round trip is the test of a dream: a pattern the model really hears survives losing its
phase and being re-analysed from audio; an adversarial artefact of the input space (a value
no STFT of any signal has) does not. The WAV is written as 32-bit float so nothing is clipped
or rescaled: the file that is classified is exactly the audio Griffin-Lim produced, and the
file a person hears.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import tensorflow as tf

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, FeatureConfig
from nsynth_research.instruments.features.spectrogram import (
    inverse_features,
    magnitude_to_audio,
    tf_features,
)
from nsynth_research.instruments.features.stats import FeatureStats


def denormalise(x: np.ndarray, stats: FeatureStats, cfg: FeatureConfig) -> np.ndarray:
    """The inverse of `FeatureStats.normaliser`: normalised input -> log-magnitude features."""
    return np.asarray(x, np.float64) * (stats.std + cfg.norm_eps) + stats.mean


def normalised_features(audio: np.ndarray, stats: FeatureStats, cfg: FeatureConfig) -> np.ndarray:
    """What the model sees of (n, 64000) audio: the training features and normalisation."""
    feats = tf_features(tf.constant(np.asarray(audio, np.float32)), cfg)
    return stats.normaliser(cfg.norm_eps)(feats).numpy()


def dream_audio(
    x: np.ndarray, stats: FeatureStats, cfg: FeatureConfig, *, n_iter: int, seed: int
) -> np.ndarray:
    """One normalised input (frames, bins) as 64000 samples of 16 kHz audio."""
    magnitude = inverse_features(denormalise(x, stats, cfg), cfg)
    return magnitude_to_audio(magnitude, cfg, n_iter=n_iter, seed=seed)


def write_wav(path: Path, audio: np.ndarray) -> Path:
    """A 16 kHz mono float WAV (no clipping, no gain: see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(audio, np.float32), SAMPLE_RATE, subtype="FLOAT")
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
