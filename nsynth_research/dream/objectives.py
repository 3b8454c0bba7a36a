"""What a dream maximises: a family's score, a layer's activation energy, one channel's mean.

Every objective reads the trained model in inference mode (batch norm with its moving
statistics), so each example of a batch is climbed independently and a batch of many dreams
costs one forward and backward pass per step. Each returns the per-example score and the
quantities worth watching step by step (for a class: its logit, its probability and the
strongest rival logit), which the ascent records as curves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from nsynth_research.dream.ascent import Objective
from nsynth_research.dream.layers import output_layer
from nsynth_research.instruments.model import feature_blocks


def _as_input(x: tf.Tensor) -> tf.Tensor:
    return x[..., None]


def _listed(out: tf.Tensor | list[tf.Tensor]) -> list[tf.Tensor]:
    """A Keras model of one output returns it bare; of several, a list."""
    return list(out) if isinstance(out, list | tuple) else [out]


def views(model: keras.Model, names: Sequence[str]) -> Callable[[tf.Tensor], list[tf.Tensor]]:
    """The named layers' outputs for a (batch, frames, bins) input, with the model's weights.

    A first conv that is a valid kernel as tall as the whole spectrum (the seed's 1-D conv
    over time) is recomputed as an einsum over kernel-height windows: TensorFlow's CPU
    `Conv2DBackpropInput` for that kernel shape is ~100x slower than its forward pass, and it
    made one ascent step take seconds. The result is the same function (checked by the tests);
    every other model goes through Keras unchanged.
    """
    names = list(names)
    blocks = feature_blocks(model)
    first = model.get_layer(blocks[0].conv) if blocks else None
    fast = (
        first is not None
        and first.padding == "valid"
        and tuple(first.strides) == (1, 1)
        and tuple(first.dilation_rate) == (1, 1)
        and first.kernel_size[1] == model.input_shape[2]
        and first.input._keras_history.operation is model.layers[0]
    )
    if first is None or not fast:
        sub = keras.Model(model.input, [model.get_layer(n).output for n in names])
        return lambda x: _listed(sub(_as_input(x), training=False))

    kt = first.kernel_size[0]

    def conv0(x: tf.Tensor) -> tf.Tensor:
        frames = tf.signal.frame(x, kt, 1, axis=1)  # (batch, frames - kt + 1, kt, bins)
        out = tf.einsum("btkf,kfc->btc", frames, first.kernel[:, :, 0, :])[:, :, None, :]
        out = out + first.bias if first.use_bias else out
        return first.activation(out)

    later = [n for n in names if n != first.name]
    rest = keras.Model(first.output, [model.get_layer(n).output for n in later]) if later else None

    def run(x: tf.Tensor) -> list[tf.Tensor]:
        c = conv0(x)
        outs = iter(_listed(rest(c, training=False)) if rest is not None else [])
        return [c if n == first.name else next(outs) for n in names]

    return run


def view(model: keras.Model, layer: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """One layer's output (see `views`)."""
    both = views(model, [layer])
    return lambda x: both(x)[0]


def class_scores(
    logits: tf.Tensor, targets: tf.Tensor, kind: str
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """(batch, classes) logits -> each row's target scored as `kind` (see
    `config.ClassObjectiveKind`), with its logit, probability and the strongest rival."""
    z = tf.cast(logits, tf.float32)
    n = z.shape[-1]
    target = tf.gather(z, targets, axis=1, batch_dims=1)
    log_p = target - tf.reduce_logsumexp(z, axis=1)
    mask = tf.one_hot(targets, n, on_value=True, off_value=False)
    others = tf.where(mask, tf.fill(tf.shape(z), -np.inf), z)
    score = {
        "logit": target,
        "contrast": target - (tf.reduce_sum(z, axis=1) - target) / (n - 1),
        "log_softmax": log_p,
        "probability": tf.exp(log_p),
    }[kind]
    watch = {
        "target_logit": target,
        "target_prob": tf.exp(log_p),
        "rival_logit": tf.reduce_max(others, axis=1),
        "rival": tf.cast(tf.argmax(others, axis=1), tf.float32),
    }
    return score, watch


def class_objective(model: keras.Model, targets: np.ndarray, kind: str) -> Objective:
    """Each example's own target family, scored as `kind`."""
    index = tf.constant(np.asarray(targets, np.int32))
    logits_of = view(model, output_layer(model))
    return lambda x: class_scores(logits_of(x), index, kind)


def layer_objective(model: keras.Model, layer: str) -> Objective:
    """Mean squared activation of a layer: DeepDream's L2 objective, which amplifies whatever
    the layer already sees in the input (it also works for layers that can go negative)."""
    sub = view(model, layer)

    def objective(x: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        act = tf.cast(sub(x), tf.float32)
        score = tf.reduce_mean(tf.square(act), axis=list(range(1, act.shape.rank)))
        return score, {"energy": score}

    return objective


def channel_objective(model: keras.Model, targets: Sequence[tuple[str, int]]) -> Objective:
    """Mean activation of one channel per example: example i climbs channel `targets[i][1]`
    of layer `targets[i][0]`, all layers in one forward pass."""
    layers = list(dict.fromkeys(layer for layer, _ in targets))
    sub = views(model, layers)
    picks = [(layers.index(layer), int(c)) for layer, c in targets]

    def objective(x: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        outs = [tf.cast(a, tf.float32) for a in sub(x)]
        means = [tf.reduce_mean(a, axis=list(range(1, a.shape.rank - 1))) for a in outs]
        score = tf.stack([means[k][i, c] for i, (k, c) in enumerate(picks)])
        return score, {"activation": score}

    return objective


def probabilities(model: keras.Model, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Softmax family probabilities of normalised inputs (n, frames, bins)."""
    out = [
        tf.nn.softmax(tf.cast(model(_as_input(x[i : i + batch]), training=False), tf.float32))
        for i in range(0, len(x), batch)
    ]
    return tf.concat(out, 0).numpy()
