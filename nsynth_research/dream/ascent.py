"""Gradient ascent on the model's normalised input, with the regularisers that make it legible.

Unregularised ascent on a spectrogram CNN finds high-frequency, adversarial speckle: the
score climbs but the picture means nothing and the audio is noise. The remedies are the ones
of DeepDream and of Olah et al.'s "Feature Visualization" (Distill 2017):

- an L2 penalty on the normalised input, which pulls every cell towards the train mean (0);
- a total-variation penalty over time and frequency, which favours connected shapes;
- jitter: a random roll before each step, so no single cell alignment can be exploited;
- a periodic Gaussian blur of the update, which damps what the jitter leaves;
- octaves, coarse to fine. DeepDream rescales the image itself, but this CNN ends in a dense
  layer and only accepts its full 251 x 513 input, so an octave here optimises a *low
  resolution update* that is resized up before being added: large shapes first, detail last.

Each step's gradient is scaled per example to a mean absolute value of 1 (DeepDream's
normalised step), so one learning rate works for every objective and layer. The input is kept
within what audio can produce: features of at least 0 (silence) and at most those of a
full-scale DC signal. Everything random comes from one seeded generator, so a fixed seed
gives the same dream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from nsynth_research.dream.config import AscentConfig
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.features.spectrogram import feature_ceiling
from nsynth_research.instruments.features.stats import FeatureStats

#: (batch, frames, bins) normalised input -> (batch,) score to maximise.
Objective = Callable[[tf.Tensor], tf.Tensor]


@dataclass(frozen=True)
class Bounds:
    """Per-(frame, bin) limits of the normalised input that real audio can reach."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, stats: FeatureStats, cfg: FeatureConfig) -> Bounds:
        """From feature 0 (silence) to the largest feature audio in [-1, 1] can give."""
        denom = stats.std.astype(np.float64) + cfg.norm_eps
        top = feature_ceiling(cfg)
        low = (0.0 - stats.mean) / denom
        high = (top - stats.mean) / denom
        return cls(low.astype(np.float32), high.astype(np.float32))

    def clip(self, x: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(x, self.low, self.high)


def ascend(
    objective: Objective,
    start: np.ndarray,
    cfg: AscentConfig,
    bounds: Bounds,
    rng: np.random.Generator,
) -> np.ndarray:
    """Maximise `objective` from `start` (batch, frames, bins); returns the final input."""
    base = bounds.clip(tf.constant(start, tf.float32))
    full = tuple(int(n) for n in base.shape[1:])
    for octave in range(cfg.octaves):
        scale = cfg.octave_scale ** (cfg.octaves - 1 - octave)
        low_res = tuple(max(1, round(n / scale)) for n in full)
        update = tf.Variable(tf.zeros((base.shape[0], *low_res, 1), tf.float32))
        for step in range(cfg.steps):
            shift = rng.integers(-cfg.jitter, cfg.jitter + 1, size=2) if cfg.jitter else (0, 0)
            _step(objective, base, update, full, cfg, bounds, [int(s) for s in shift])
            if cfg.blur_sigma > 0 and (step + 1) % cfg.blur_every == 0:
                update.assign(blur(update, cfg.blur_sigma))
        base = _compose(base, update, full, bounds)
    return base.numpy()


def _compose(
    base: tf.Tensor, update: tf.Tensor, full: tuple[int, int], bounds: Bounds
) -> tf.Tensor:
    up = tf.image.resize(update, full, method="bilinear")[..., 0]
    return bounds.clip(base + up)


def _step(
    objective: Objective,
    base: tf.Tensor,
    update: tf.Variable,
    full: tuple[int, int],
    cfg: AscentConfig,
    bounds: Bounds,
    shift: list[int],
) -> None:
    with tf.GradientTape() as tape:
        x = _compose(base, update, full, bounds)
        # Examples are independent, so the gradient of the sum is each one's own gradient.
        total = tf.reduce_sum(objective(tf.roll(x, shift, axis=[1, 2])) - penalty(x, cfg))
    grad = tape.gradient(total, update)
    size = tf.reduce_mean(tf.abs(grad), axis=[1, 2, 3], keepdims=True)
    update.assign_add(cfg.learning_rate * grad / (size + 1e-8))


def penalty(x: tf.Tensor, cfg: AscentConfig) -> tf.Tensor:
    """Per-example L2 and total-variation penalty of a (batch, frames, bins) input."""
    l2 = tf.reduce_mean(tf.square(x), axis=[1, 2])
    tv_time = tf.reduce_mean(tf.abs(x[:, 1:, :] - x[:, :-1, :]), axis=[1, 2])
    tv_freq = tf.reduce_mean(tf.abs(x[:, :, 1:] - x[:, :, :-1]), axis=[1, 2])
    return cfg.l2 * l2 + cfg.tv * (tv_time + tv_freq)


def blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian blur of (batch, h, w, 1) with reflected edges (no dark border)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = tf.constant(taps / taps.sum(), tf.float32)
    out = images
    for axis, shape in ((1, (-1, 1, 1, 1)), (2, (1, -1, 1, 1))):
        if out.shape[axis] <= radius:
            continue  # an axis too short to reflect (a very coarse octave) is left as is
        pad = [[0, 0], [0, 0], [0, 0], [0, 0]]
        pad[axis] = [radius, radius]
        kernel = tf.reshape(taps, shape)
        out = tf.nn.conv2d(tf.pad(out, pad, mode="REFLECT"), kernel, strides=1, padding="VALID")
    return out
