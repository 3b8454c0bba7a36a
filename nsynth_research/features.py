"""Log-magnitude STFT features, twice: librosa as the reference, TensorFlow for the pipeline.

The classic pipeline defined its features with librosa, so librosa stays the definition; the
training input pipeline needs a batched, graph-side version that is fast and never leaves
TensorFlow. Tests hold the two equal, so a change to either one is caught.
"""

from __future__ import annotations

import librosa
import numpy as np
import tensorflow as tf

from nsynth_research.config import NUM_SAMPLES, FeatureConfig
from nsynth_research.errors import DataError


def librosa_features(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """`log(1 + scale*|STFT|)` of one note, time-major (frames, bins), float32.

    librosa's defaults are spelled out (periodic Hann window, centred frames, zero padding:
    librosa 0.11's `pad_mode="constant"`) so that a future librosa default change cannot move
    the reference away from the TensorFlow version silently.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.shape[0] != NUM_SAMPLES:
        raise DataError(
            f"expected mono audio of {NUM_SAMPLES} samples, got an array of shape {audio.shape}"
        )
    spec = librosa.stft(
        audio.astype(np.float32, copy=False),
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        window="hann",
        center=True,
        pad_mode="constant",
    )
    return np.log1p(cfg.log_scale * np.abs(spec)).T.astype(np.float32)


def tf_features(audio: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """The same features for a (..., 64000) batch, returned as (..., frames, bins) float32.

    `tf.signal.stft` has no centring, so the signal is zero-padded by n_fft//2 on both sides
    first, exactly as librosa does; frame t of both then starts at sample `t*hop - n_fft//2`.

    The FFT runs in float64 because librosa's does (its float64 window promotes the frames),
    and a float32 FFT is not close enough: its rounding error, ~1e-5 of a frame's energy,
    lands in the near-empty bins between the partials of a tonal note, where the steep
    `log(1 + 1000*x)` turns it into errors of 1e-2. Whole batches go through one call because
    that is several times faster than per-example calls.
    """
    audio = tf.convert_to_tensor(audio, dtype=tf.float32)
    rank = audio.shape.rank
    if rank is None or rank < 1:
        raise DataError(f"tf_features needs a (..., {NUM_SAMPLES}) tensor, got {audio.shape}")
    half = cfg.n_fft // 2
    padded = tf.pad(audio, [[0, 0]] * (rank - 1) + [[half, half]], mode="CONSTANT")
    frames = tf.signal.frame(padded, cfg.n_fft, cfg.hop_length, pad_end=False)
    window = tf.signal.hann_window(cfg.n_fft, periodic=True, dtype=tf.float64)
    spec = tf.signal.rfft(tf.cast(frames, tf.float64) * window, fft_length=[cfg.n_fft])
    magnitude = tf.cast(tf.abs(spec), tf.float32)
    return tf.math.log1p(cfg.log_scale * magnitude)
