"""Log-magnitude STFT features, twice: librosa as the reference, TensorFlow for the pipeline.

The classic pipeline defined its features with librosa, so librosa stays the definition; the
training input pipeline needs a batched, graph-side version that is fast and never leaves
TensorFlow. Tests hold the two equal, so a change to either one is caught.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import librosa
import numpy as np
import tensorflow as tf

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, FeatureConfig


def librosa_features(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """`log(1 + scale*|STFT|)` of one note, time-major (frames, bins), float32; for
    `kind: logmel` the magnitudes are first summed into mel bands by `mel_filters`.

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
    magnitude = np.abs(spec)
    if cfg.kind != "stft":
        magnitude = mel_filters(cfg) @ magnitude
    if cfg.kind == "pcen":
        return librosa.pcen(
            magnitude * PCEN_INPUT_SCALE,
            sr=SAMPLE_RATE,
            hop_length=cfg.hop_length,
            time_constant=PCEN_TIME_CONSTANT,
        ).T.astype(np.float32)
    return np.log1p(cfg.log_scale * magnitude).T.astype(np.float32)


#: PCEN with librosa's defaults (gain 0.98, bias 2, power 0.5, eps 1e-6), on magnitudes scaled
#: to 16-bit integer range as librosa's docs recommend for float audio in [-1, 1].
PCEN_INPUT_SCALE = 2.0**15
PCEN_TIME_CONSTANT = 0.4
PCEN_GAIN, PCEN_BIAS, PCEN_POWER, PCEN_EPS = 0.98, 2.0, 0.5, 1e-6


def pcen_smoothing(cfg: FeatureConfig) -> float:
    """librosa's one-pole smoothing coefficient for the PCEN time constant at this hop."""
    t_frames = PCEN_TIME_CONSTANT * SAMPLE_RATE / float(cfg.hop_length)
    return float((np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2))


def _tf_pcen(mel: tf.Tensor, b: float) -> tf.Tensor:
    """PCEN of (batch, frames, bands) energies, as librosa: the one-pole smoother starts
    from a previous value of 1 (librosa's `lfilter_zi` state, not scaled by the input)."""
    energy = mel * PCEN_INPUT_SCALE
    frames = tf.transpose(energy, [1, 0, 2])
    smooth = tf.scan(lambda m, e: (1 - b) * m + b * e, frames, initializer=tf.ones_like(frames[0]))
    smooth = tf.transpose(smooth, [1, 0, 2])
    gain = tf.exp(-PCEN_GAIN * (tf.math.log(PCEN_EPS) + tf.math.log1p(smooth / PCEN_EPS)))
    return tf.pow(energy * gain + PCEN_BIAS, PCEN_POWER) - PCEN_BIAS**PCEN_POWER


def mel_filters(cfg: FeatureConfig) -> np.ndarray:
    """librosa's Slaney mel filterbank (n_mels, n_fft//2+1): the one both paths apply, so
    the mel definition is librosa's and cannot drift between them."""
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=cfg.n_fft, n_mels=cfg.n_mels)


def tf_features(audio: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """The same features for a (..., 64000) batch, returned as (..., frames, bins) float32.

    `tf.signal.stft` has no centring, so the signal is zero-padded by n_fft//2 on both sides
    first, exactly as librosa does; frame t of both then starts at sample `t*hop - n_fft//2`.

    The FFT runs in float64 because librosa's does (its float64 window promotes the frames),
    and a float32 FFT is not close enough: its rounding error, ~1e-5 of a frame's energy,
    lands in the near-empty bins between the partials of a tonal note, where the steep
    `log(1 + 1000*x)` turns it into errors of 1e-2. Whole batches go through one call because
    that is several times faster than per-example calls.

    The graph is compiled with XLA, which fuses the cast, window, magnitude and log into the
    FFT's neighbours: unfused, each is a pass over a float64 (frames, n_fft) array per note,
    and together they cost more than the FFT itself (`benchmarks features` measures it).
    """
    audio = tf.convert_to_tensor(audio, dtype=tf.float32)
    rank = audio.shape.rank
    if rank is None or rank < 1 or audio.shape[-1] not in (None, NUM_SAMPLES):
        raise DataError(f"tf_features needs a (..., {NUM_SAMPLES}) tensor, got {audio.shape}")
    compiled = _compiled_features(cfg)
    flat = compiled(tf.reshape(audio, [-1, NUM_SAMPLES]))
    return tf.reshape(flat, tf.concat([tf.shape(audio)[:-1], [cfg.frames, cfg.bins]], 0))


def feature_ceiling(cfg: FeatureConfig) -> float:
    """The largest feature any signal in [-1, 1] can give: no |STFT| bin exceeds the window's
    sum, n_fft/2, and no mel band exceeds that times its filter's total weight."""
    peak = cfg.n_fft / 2
    if cfg.kind == "logmel":
        peak *= float(mel_filters(cfg).sum(axis=1).max())
    return float(np.log1p(cfg.log_scale * peak))


@functools.lru_cache(maxsize=8)
def _compiled_features(cfg: FeatureConfig) -> Callable:
    """One compiled function per feature setting: XLA then specialises it per input shape.

    With `fft_precision: float32` the frames stay float32 through the FFT: about twice the
    throughput, at rounding errors that only show in near-empty bins (see the module tests).
    """
    n_fft, hop_length, log_scale = cfg.n_fft, cfg.hop_length, cfg.log_scale
    half = n_fft // 2
    dtype = tf.float64 if cfg.fft_precision == "float64" else tf.float32
    # A NumPy array, made a tensor inside the function: a tensor made here could belong to
    # whichever graph (e.g. a tf.data map) first asked for this setting.
    mel = mel_filters(cfg).T.astype(np.float32) if cfg.kind != "stft" else None
    smoothing = pcen_smoothing(cfg) if cfg.kind == "pcen" else 0.0

    @tf.function(jit_compile=True, input_signature=[tf.TensorSpec([None, NUM_SAMPLES])])
    def features(audio: tf.Tensor) -> tf.Tensor:
        padded = tf.pad(audio, [[0, 0], [half, half]], mode="CONSTANT")
        frames = tf.signal.frame(padded, n_fft, hop_length, pad_end=False)
        window = tf.signal.hann_window(n_fft, periodic=True, dtype=dtype)
        spec = tf.signal.rfft(tf.cast(frames, dtype) * window, fft_length=[n_fft])
        # |z| as sqrt(re^2 + im^2): tf.abs on complex is an unvectorised hypot, and the
        # squares cannot overflow for audio in [-1, 1].
        power = tf.math.square(tf.math.real(spec)) + tf.math.square(tf.math.imag(spec))
        magnitude = tf.cast(tf.math.sqrt(power), tf.float32)
        if mel is not None:
            magnitude = tf.linalg.matmul(magnitude, tf.constant(mel))
        if smoothing:
            return _tf_pcen(magnitude, smoothing)
        return tf.math.log1p(log_scale * magnitude)

    return features
