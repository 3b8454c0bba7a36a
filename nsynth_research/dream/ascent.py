"""Gradient ascent on the model's normalised input, kept legible and kept audible.

Unregularised ascent on a spectrogram CNN finds high-frequency, adversarial speckle: the
score climbs but the picture means nothing and the audio is noise. The remedies are the ones
of DeepDream and of Olah et al.'s "Feature Visualization" (Distill 2017):

- an L2 penalty on the normalised input, which pulls every cell towards the train mean (0);
- a total-variation penalty over time and frequency, which favours connected shapes;
- jitter: a random roll before each step, so no single cell alignment can be exploited;
- a periodic Gaussian blur of the update, which damps what the jitter leaves;
- octaves, coarse to fine. The CNN ends in a dense layer and only accepts its full input, so
  an octave optimises a *low resolution update* that is resized up before being added.

The input is kept to what a real note can be (`Bounds`): every cell between silence and the
loudest value any full-scale signal can give, every frame no louder as a whole than the
loudest frame of the real notes it was measured on, and the whole input no louder than the
loudest of those notes. The per-cell limit alone lets every bin of a frame sit at full scale
at once, which no signal does: resynthesised, such an input is far over full scale. The
energy limits are gains: an over-loud frame or input is turned down as a whole, inside the
graph, so the gradient sees the limit and the climb spends energy where it pays.

Each step's gradient is scaled per example to a mean absolute value of 1 (DeepDream's
normalised step), so one learning rate works for every objective and layer. Everything random
comes from one seeded generator, so a fixed seed gives the same dream.
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

#: (batch, frames, bins) normalised input -> ((batch,) score to maximise, {name: (batch,)}
#: quantities recorded at every step).
Objective = Callable[[tf.Tensor], tuple[tf.Tensor, dict[str, tf.Tensor]]]


@dataclass(frozen=True)
class Bounds:
    """What real audio can reach, in the normalised input space.

    `low`/`high` per (frame, bin); `frame_energy`: the largest sum over bins of squared
    magnitudes (the model's own magnitudes, mel bands included) a frame may have;
    `note_energy`: the largest sum of that over all frames a whole input may have. Both are
    None where the features are no log-magnitude (PCEN), which only the cell limits bound.
    """

    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    log_scale: float
    frame_energy: float | None
    note_energy: float | None

    @classmethod
    def of(
        cls,
        stats: FeatureStats,
        cfg: FeatureConfig,
        frame_energy: float | None,
        note_energy: float | None = None,
    ) -> Bounds:
        """From feature 0 (silence) to the largest feature audio in [-1, 1] can give, with
        the loudest real frame and note as energy limits."""
        denom = stats.std.astype(np.float64) + cfg.norm_eps
        low = (0.0 - stats.mean) / denom
        high = (feature_ceiling(cfg) - stats.mean) / denom
        log_magnitude = cfg.kind != "pcen"
        return cls(
            low.astype(np.float32),
            high.astype(np.float32),
            stats.mean.astype(np.float32),
            denom.astype(np.float32),
            cfg.log_scale,
            frame_energy if log_magnitude else None,
            note_energy if log_magnitude else None,
        )

    def apply(self, x: tf.Tensor) -> tf.Tensor:
        """`x` clipped per cell, then every frame over the frame limit turned down, then the
        whole input turned down if it is still over the note limit."""
        x = tf.clip_by_value(x, self.low, self.high)
        if self.frame_energy is None:
            return x
        level = tf.math.expm1(tf.maximum(x * self.scale + self.mean, 0.0))  # log_scale |S|
        energy = tf.reduce_sum(tf.square(level), axis=-1, keepdims=True)
        sq = self.log_scale**2
        # Gains are 1 within a limit; no division by a (near-)silent frame's energy, so the
        # gradient of the branch tf.where does not take stays finite too.
        limit = self.frame_energy * sq
        gain = tf.sqrt(limit / tf.maximum(energy, limit))
        if self.note_energy is not None:
            total = tf.reduce_sum(energy * tf.square(gain), axis=-2, keepdims=True)
            whole = self.note_energy * sq
            gain = gain * tf.sqrt(whole / tf.maximum(total, whole))
        turned = (tf.math.log1p(gain * level) - self.mean) / self.scale
        return tf.where(gain < 1.0, turned, x)

    def frame_energies(self, x: np.ndarray) -> np.ndarray:
        """Per-frame energy (..., frames) of normalised inputs, in |S|^2 units."""
        feats = np.asarray(x, np.float64) * self.scale + self.mean
        return frame_energy(feats, self.log_scale)


def frame_energy(features: np.ndarray, log_scale: float) -> np.ndarray:
    """Per-frame energy (..., frames) of log-magnitude features log(1 + log_scale |S|): the
    sum over bins of |S|^2."""
    magnitude = np.expm1(np.maximum(np.asarray(features, np.float64), 0.0)) / log_scale
    return np.sum(np.square(magnitude), axis=-1)


@dataclass
class Ascent:
    """The result of one ascent: final inputs and, per recorded name, (steps, batch) curves."""

    x: np.ndarray
    curves: dict[str, np.ndarray]


def ascend(
    objective: Objective,
    start: np.ndarray,
    cfg: AscentConfig,
    bounds: Bounds,
    rng: np.random.Generator,
) -> Ascent:
    """Maximise `objective` from `start` (batch, frames, bins)."""
    base = bounds.apply(tf.constant(start, tf.float32))
    _, frames, bins = base.shape
    full = (int(frames), int(bins))
    step = _step_function(objective, cfg, bounds, full)
    curves: dict[str, list[np.ndarray]] = {}
    for octave in range(cfg.octaves):
        scale = cfg.octave_scale ** (cfg.octaves - 1 - octave)
        low_res = tuple(max(1, round(n / scale)) for n in full)
        update = tf.zeros((base.shape[0], *low_res, 1), tf.float32)
        for k in range(cfg.steps):
            shift = rng.integers(-cfg.jitter, cfg.jitter + 1, size=2) if cfg.jitter else (0, 0)
            update, watch = step(base, update, tf.constant(shift, tf.int32))
            for name, value in watch.items():
                curves.setdefault(name, []).append(value.numpy())
            if cfg.blur_sigma > 0 and (k + 1) % cfg.blur_every == 0:
                update = blur(update, cfg.blur_sigma)
        base = _compose(base, update, full, bounds)
    return Ascent(base.numpy(), {k: np.stack(v) for k, v in curves.items()})


def _compose(
    base: tf.Tensor, update: tf.Tensor, full: tuple[int, int], bounds: Bounds
) -> tf.Tensor:
    up = tf.image.resize(update, full, method="bilinear")[..., 0]
    return bounds.apply(base + up)


def _step_function(
    objective: Objective, cfg: AscentConfig, bounds: Bounds, full: tuple[int, int]
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, dict[str, tf.Tensor]]]:
    """One compiled step for every octave (the low-resolution shape is left open)."""
    frames, bins = full

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, frames, bins), tf.float32),
            tf.TensorSpec((None, None, None, 1), tf.float32),
            tf.TensorSpec((2,), tf.int32),
        ]
    )
    def step(
        base: tf.Tensor, update: tf.Tensor, shift: tf.Tensor
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        with tf.GradientTape() as tape:
            tape.watch(update)
            x = _compose(base, update, full, bounds)
            score, watch = objective(tf.roll(x, shift, axis=[1, 2]))
            # Examples are independent, so the gradient of the sum is each one's own gradient.
            total = tf.reduce_sum(score - penalty(x, cfg))
        grad = tape.gradient(total, update)
        size = tf.reduce_mean(tf.abs(grad), axis=[1, 2, 3], keepdims=True)
        return update + cfg.learning_rate * grad / (size + 1e-8), {"score": score, **watch}

    return step


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
