"""What a dream maximises: a family's logit, a layer's activation energy, one channel's mean.

All three read the trained model in inference mode (batch norm with its moving statistics),
so each example of a batch is climbed independently and a batch of 11 families costs one
forward and backward pass per step.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from nsynth_research.core.errors import UserError
from nsynth_research.dream.ascent import Objective


def layer_names(model: keras.Model) -> list[str]:
    """Every layer a dream can amplify: all but the input, in network order."""
    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def conv_layers(model: keras.Model) -> list[str]:
    """The model's conv layers in order (conv0, conv1, ...)."""
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def check_layer(model: keras.Model, name: str | None) -> str:
    """The layer to amplify: `name`, or by default the last conv block's ReLU (the deepest
    layer that still has time and frequency axes). An unknown name is one line listing all."""
    names = layer_names(model)
    if name is None:
        relus = [n for n in names if isinstance(model.get_layer(n), keras.layers.ReLU)]
        return relus[-1] if relus else conv_layers(model)[-1]
    if name not in names:
        raise UserError(f"unknown layer {name!r}; valid layers: {', '.join(names)}")
    return name


def channel_layer(model: keras.Model, conv: str) -> str:
    """Where a conv block's channels are read: after its ReLU when there is one (what the next
    block sees), else the conv itself."""
    relu = conv.replace("conv", "relu", 1)
    names = layer_names(model)
    return relu if relu in names else conv


def _as_input(x: tf.Tensor) -> tf.Tensor:
    return x[..., None]


def view(model: keras.Model, layer: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """`layer`'s output for a (batch, frames, bins) input, with the model's own weights.

    The seed's first conv (a valid kernel as tall as the whole spectrum) is recomputed as an
    einsum over 3-frame windows when the chain passes through it: TensorFlow's CPU
    `Conv2DBackpropInput` for that kernel shape is ~100x slower than its forward pass, and it
    made one ascent step take seconds. The result is the same function (checked by the tests);
    every other model goes through Keras unchanged.
    """
    first = model.get_layer(conv_layers(model)[0])
    kt, kf = first.kernel_size
    fast = (
        first.padding == "valid"
        and tuple(first.strides) == (1, 1)
        and tuple(first.dilation_rate) == (1, 1)
        and kf == model.input_shape[2]
        and model.layers.index(first) == 1
    )
    if not fast:
        sub = keras.Model(model.input, model.get_layer(layer).output)
        return lambda x: sub(_as_input(x), training=False)

    def conv0(x: tf.Tensor) -> tf.Tensor:
        frames = tf.signal.frame(x, kt, 1, axis=1)  # (batch, frames - kt + 1, kt, bins)
        out = tf.einsum("btkf,kfc->btc", frames, first.kernel[:, :, 0, :])[:, :, None, :]
        return out + first.bias if first.use_bias else out

    if layer == first.name:
        return conv0
    rest = keras.Model(first.output, model.get_layer(layer).output)
    return lambda x: rest(conv0(x), training=False)


def class_objective(model: keras.Model, targets: np.ndarray) -> Objective:
    """Logit of each example's own target family."""
    index = tf.constant(np.asarray(targets, np.int32))
    logits_of = view(model, model.layers[-1].name)

    def objective(x: tf.Tensor) -> tf.Tensor:
        logits = tf.cast(logits_of(x), tf.float32)
        return tf.gather(logits, index, axis=1, batch_dims=1)

    return objective


def layer_objective(model: keras.Model, layer: str) -> Objective:
    """Mean squared activation of a layer: DeepDream's L2 objective, which amplifies whatever
    the layer already sees in the input (it also works for layers that can go negative)."""
    sub = view(model, layer)

    def objective(x: tf.Tensor) -> tf.Tensor:
        act = tf.cast(sub(x), tf.float32)
        return tf.reduce_mean(tf.square(act), axis=list(range(1, act.shape.rank)))

    return objective


def channel_objective(model: keras.Model, layer: str, channels: np.ndarray) -> Objective:
    """Mean activation of one channel per example (example i climbs `channels[i]`)."""
    sub = view(model, layer)
    index = tf.constant(np.asarray(channels, np.int32))

    def objective(x: tf.Tensor) -> tf.Tensor:
        act = tf.cast(sub(x), tf.float32)
        per_channel = tf.reduce_mean(act, axis=list(range(1, act.shape.rank - 1)))
        return tf.gather(per_channel, index, axis=1, batch_dims=1)

    return objective


def probabilities(model: keras.Model, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """Softmax family probabilities of normalised inputs (n, frames, bins)."""
    out = [
        tf.nn.softmax(tf.cast(model(_as_input(x[i : i + batch]), training=False), tf.float32))
        for i in range(0, len(x), batch)
    ]
    return tf.concat(out, 0).numpy()
