"""Features back to audio, for whole batches: the log undone exactly, mel bands -> |STFT| by
non-negative least squares, |STFT| -> signal by fast Griffin-Lim.

Deep Dream hears what a model responds to through this inverse; a dream run hears a hundred
inputs or more. One at a time, librosa's solvers spend most of a
run there (NNLS by L-BFGS over each input's 128k unknowns, then Griffin-Lim with a numba
overlap-add per iteration); batched in TensorFlow the same arithmetic is a few large matrix
products and FFTs per iteration, run eagerly (a traced graph of every iteration costs more to
build than its per-op overhead saves) (`benchmarks dream` measures both, and the quality of the
result). Definitions follow `instruments.features.spectrogram`: the same periodic Hann
window, centred frames with zero padding, the same mel filters; Griffin-Lim is librosa's
fast variant (Perraudin et al. 2013, momentum 0.99) from a seeded random phase.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from nsynth_research.instruments.config import NUM_SAMPLES, FeatureConfig
from nsynth_research.instruments.features.spectrogram import mel_filters

MOMENTUM = 0.99
#: Projected-gradient (FISTA) iterations of the mel inverse, from the clipped least-squares
#: start: the bands of the result match the input's within 1 % (tests/dream/test_inverse.py).
NNLS_ITERS = 60
#: Inputs inverted per batch (memory: ~1 MB per input per complex spectrogram).
BATCH = 32


def inverse_features(features: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """|STFT| (..., frames, n_fft//2+1) back from features (..., frames, bins), float64.

    The log is inverted exactly; negative values (which no real magnitude can give, but an
    input optimised by gradient ascent can) are clipped to 0 first, i.e. to silence. For
    `kind: logmel` the band energies are spread back over the STFT bins by `mel_to_stft`,
    the best the many-to-one mel sum allows. PCEN divides out each band's recent level, so
    it has no inverse here."""
    if cfg.kind == "pcen":
        raise ValueError("PCEN features cannot be inverted")
    features = np.maximum(np.asarray(features, np.float64), 0.0)
    magnitude = np.expm1(features) / cfg.log_scale
    return mel_to_stft(magnitude, cfg) if cfg.kind == "logmel" else magnitude


def mel_to_stft(bands: np.ndarray, cfg: FeatureConfig, iters: int = NNLS_ITERS) -> np.ndarray:
    """Non-negative |STFT| (..., frames, n_fft//2+1) whose mel bands are closest to `bands`
    (..., frames, n_mels) in least squares."""
    m = mel_filters(cfg).astype(np.float64)
    lipschitz = float(np.linalg.norm(m, 2) ** 2)
    shape = bands.shape
    b = tf.constant(np.reshape(bands, (-1, shape[-1])), tf.float32)
    mt = tf.constant(m.T, tf.float32)
    mm = tf.constant(m, tf.float32)
    x = tf.nn.relu(b @ tf.constant(np.linalg.pinv(m).T, tf.float32))
    y, t = x, 1.0
    for _ in range(iters):
        grad = (y @ mt - b) @ mm
        nxt = tf.nn.relu(y - grad / lipschitz)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        y = nxt + ((t - 1) / t_next) * (nxt - x)
        x, t = nxt, t_next
    return np.reshape(x.numpy().astype(np.float64), (*shape[:-1], m.shape[1]))


def _window(cfg: FeatureConfig) -> tf.Tensor:
    return tf.signal.hann_window(cfg.n_fft, periodic=True)


def _stft(y: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    half = cfg.n_fft // 2
    padded = tf.pad(y, [[0, 0], [half, half]])
    frames = tf.signal.frame(padded, cfg.n_fft, cfg.hop_length)
    return tf.signal.rfft(frames * _window(cfg), fft_length=[cfg.n_fft])


def _istft(spec: tf.Tensor, cfg: FeatureConfig, envelope: tf.Tensor) -> tf.Tensor:
    frames = tf.signal.irfft(spec, fft_length=[cfg.n_fft]) * _window(cfg)
    y = tf.signal.overlap_and_add(frames, cfg.hop_length) / envelope
    half = cfg.n_fft // 2
    return y[:, half : half + NUM_SAMPLES]


def _envelope(cfg: FeatureConfig, frames: int) -> tf.Tensor:
    """Sum of squared windows under each sample (librosa's istft normalisation)."""
    w2 = tf.tile(tf.square(_window(cfg))[None, :], [frames, 1])
    env = tf.signal.overlap_and_add(w2, cfg.hop_length)
    return tf.where(env > 1e-10, env, tf.ones_like(env))


def griffin_lim(magnitude: np.ndarray, cfg: FeatureConfig, *, n_iter: int, seed: int) -> np.ndarray:
    """(n, frames, n_fft//2+1) magnitudes -> (n, 64000) float32 signals; input i's random
    initial phase comes from seed + i, so the same magnitude always gives the same audio."""
    n, frames, bins = magnitude.shape
    out = []
    envelope = _envelope(cfg, frames)
    for lo in tqdm(range(0, n, BATCH), desc="Griffin-Lim", unit="batch"):
        mag = np.asarray(magnitude[lo : lo + BATCH], np.float32)
        phase = np.stack(
            [np.random.default_rng(seed + lo + i).random((frames, bins)) for i in range(len(mag))]
        )
        out.append(
            _griffin_lim(
                tf.constant(mag), tf.constant(phase, tf.float32), envelope, cfg, n_iter
            ).numpy()
        )
    return np.concatenate(out) if out else np.zeros((0, NUM_SAMPLES), np.float32)


def _griffin_lim(
    mag: tf.Tensor, phase: tf.Tensor, envelope: tf.Tensor, cfg: FeatureConfig, n_iter: int
) -> tf.Tensor:
    s = tf.complex(mag, tf.zeros_like(mag))
    angles = s * tf.exp(tf.complex(tf.zeros_like(phase), 2 * np.pi * phase))
    previous = None
    for _ in range(n_iter):
        rebuilt = _stft(_istft(angles, cfg, envelope), cfg)
        angles = rebuilt
        if previous is not None:
            angles = angles - (MOMENTUM / (1 + MOMENTUM)) * previous
        size = tf.complex(tf.abs(angles) + 1e-16, tf.zeros_like(mag))
        angles = angles / size * s
        previous = rebuilt
    return _istft(angles, cfg, envelope)
