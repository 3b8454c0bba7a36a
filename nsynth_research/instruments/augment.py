"""Augmenting training batches on the cached features, never on validation or test.

Where augmentation lives was decided by measurement (benchmarks/bench_generalisation.py
reports it): computing the STFT of a batch costs about as much as a training step of the
seed model, so audio-domain augmentation (audiomentations, then a fresh STFT every epoch)
would undo the feature cache and more than double an epoch. Everything here works on the
raw features log(1 + scale*|S|) (or the mel bands' equivalent) of a whole batch at once:

- level and spectral tilt are exact in that domain: a gain g on |S| turns a feature f into
  log1p(g * expm1(f)), per note and per frequency bin;
- a small onset delay shifts frames in and fills silence (a raw feature of 0);
- SpecAugment's time and frequency masks, after normalisation, set bands to the train mean;
- mixup blends each batch with a shuffled copy of itself, labels becoming soft one-hot rows
  (the shared loss takes both, see `core.keras_loop.SoftmaxCrossEntropy`).

Randomness is stateless and seeded per batch from a seeded `Dataset.random` that draws anew
each epoch, so a seeded run repeats exactly and no two epochs see the same changes.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from nsynth_research.instruments.config import AugmentConfig
from nsynth_research.instruments.families import NUM_CLASSES

Normaliser = Callable[[tf.Tensor], tf.Tensor]


def augmented(
    ds: tf.data.Dataset, cfg: AugmentConfig, normalise: Normaliser, seed: int
) -> tf.data.Dataset:
    """Raw (features [B, T, F], labels [B]) batches -> augmented, normalised
    ([B, T, F, 1], labels [B] or soft [B, classes] with mixup)."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def apply(batch: tuple[tf.Tensor, tf.Tensor], draw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = batch
        key = lambda k: tf.stack([draw, tf.constant(k, tf.int64)])  # noqa: E731
        x = _level_and_tilt(x, cfg, key(0))
        if cfg.time_shift:
            x = _delay(x, cfg.time_shift, key(1))
        x = normalise(x)
        if cfg.freq_masks:
            x = _mask(x, cfg.freq_masks, cfg.freq_mask_width, axis=2, seed=key(2))
        if cfg.time_masks:
            x = _mask(x, cfg.time_masks, cfg.time_mask_width, axis=1, seed=key(3))
        if cfg.mixup_alpha > 0:
            return _mixup(tf.expand_dims(x, -1), y, cfg.mixup_alpha, key(4))
        return tf.expand_dims(x, -1), y

    ds = tf.data.Dataset.zip((ds, seeds))
    return ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _level_and_tilt(x: tf.Tensor, cfg: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    if not (cfg.gain_db or cfg.tilt_db):
        return x
    batch, bins = tf.shape(x)[0], tf.shape(x)[2]
    u = tf.random.stateless_uniform([batch, 2], seed, -1.0, 1.0)
    ramp = tf.linspace(-0.5, 0.5, bins)[tf.newaxis, tf.newaxis, :]
    db = (u[:, 0] * cfg.gain_db)[:, None, None] + (u[:, 1] * cfg.tilt_db)[:, None, None] * ramp
    gain = tf.pow(10.0, db / 20.0)
    return tf.math.log1p(gain * tf.math.expm1(x))


def _delay(x: tf.Tensor, most: int, seed: tf.Tensor) -> tf.Tensor:
    batch, frames = tf.shape(x)[0], tf.shape(x)[1]
    shift = tf.random.stateless_uniform([batch, 1], seed, 0, most + 1, dtype=tf.int32)
    source = tf.range(frames)[tf.newaxis, :] - shift
    moved = tf.gather(x, tf.maximum(source, 0), axis=1, batch_dims=1)
    return tf.where((source >= 0)[:, :, tf.newaxis], moved, tf.zeros_like(moved))


def _mask(x: tf.Tensor, count: int, width: int, *, axis: int, seed: tf.Tensor) -> tf.Tensor:
    """`count` bands of up to `width` along `axis` (1 time, 2 frequency) set to 0, the train
    mean after normalisation."""
    batch, length = tf.shape(x)[0], tf.shape(x)[axis]
    u = tf.random.stateless_uniform([batch, count, 2], seed)
    widths = tf.cast(u[..., 0] * tf.cast(width + 1, tf.float32), tf.int32)
    widths = tf.minimum(widths, length)
    starts = tf.cast(u[..., 1] * tf.cast(length - widths + 1, tf.float32), tf.int32)
    pos = tf.range(length)[tf.newaxis, tf.newaxis, :]
    hit = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    keep = tf.logical_not(tf.reduce_any(hit, axis=1))  # [B, length]
    keep = keep[:, :, tf.newaxis] if axis == 1 else keep[:, tf.newaxis, :]
    return tf.where(keep, x, tf.zeros_like(x))


def _mixup(
    x: tf.Tensor, y: tf.Tensor, alpha: float, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    batch = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    g1 = tf.random.stateless_gamma([batch], seeds[0], alpha)
    g2 = tf.random.stateless_gamma([batch], seeds[1], alpha)
    lam = g1 / tf.maximum(g1 + g2, 1e-12)
    other = tf.argsort(tf.random.stateless_uniform([batch], seeds[2]))
    onehot = tf.one_hot(tf.cast(y, tf.int32), NUM_CLASSES)
    mix_x = lam[:, None, None, None] * x + (1 - lam)[:, None, None, None] * tf.gather(x, other)
    mix_y = lam[:, None] * onehot + (1 - lam)[:, None] * tf.gather(onehot, other)
    return mix_x, mix_y
