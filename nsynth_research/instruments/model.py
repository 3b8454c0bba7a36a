"""The Keras network of a run: the configured architecture's layer plan, instantiated.

The network is built only from the `model:` config section, so a logged config alone
rebuilds it; its shapes were already checked against the same plan when the config loaded
(`config.check_model_fits`), so Keras errors here are bugs, not user errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.families import NUM_CLASSES
from nsynth_research.instruments.models.plan import EMBEDDING_LAYER, Architecture

__all__ = ["EMBEDDING_LAYER", "INPUT_NAME", "build_model", "embedding_model", "feature_blocks"]

INPUT_NAME = "spectrogram"

#: The Keras layer of each plan kind (`models.plan.Kind`).
KERAS_LAYERS: dict[str, type[keras.layers.Layer]] = {
    "conv": layers.Conv2D,
    "batch_norm": layers.BatchNormalization,
    "relu": layers.ReLU,
    "max_pool": layers.MaxPooling2D,
    "average_pool": layers.AveragePooling2D,
    "flatten": layers.Flatten,
    "global_average_pool": layers.GlobalAveragePooling2D,
    "global_max_pool": layers.GlobalMaxPooling2D,
    "dense": layers.Dense,
    "dropout": layers.Dropout,
}


def build_model(
    cfg: Architecture, features: FeatureConfig, precision: str = "float32"
) -> keras.Model:
    """The plan's layers in order (the last is the embedding), then 11 logits.

    `precision` is applied per layer (not as Keras' global policy) so that building one model
    never changes how another is built; logits stay float32 for a stable softmax.
    """
    plan = cfg.plan(features.frames, features.bins)
    inputs = keras.Input(shape=plan.input, name=INPUT_NAME)
    x = inputs
    for spec in plan.layers:
        x = KERAS_LAYERS[spec.kind](**spec.args, dtype=precision, name=spec.name)(x)
    logits = layers.Dense(NUM_CLASSES, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=f"nsynth_{cfg.arch}")


def embedding_model(model: keras.Model) -> keras.Model:
    """A model giving (logits, embedding) in one forward pass, sharing the trained weights."""
    return keras.Model(
        model.input, [model.output, model.get_layer(EMBEDDING_LAYER).output], name="with_embedding"
    )


#: Layers that sit between a conv and its activation without changing what a channel is.
PASS_THROUGH = (
    layers.BatchNormalization,
    layers.LayerNormalization,
    layers.GroupNormalization,
    layers.Dropout,
    layers.SpatialDropout2D,
)
ACTIVATIONS = (layers.ReLU, layers.Activation, layers.LeakyReLU, layers.ELU, layers.PReLU)


@dataclass(frozen=True)
class FeatureBlock:
    """One conv of a built (or loaded) network and where its channels are read."""

    conv: str
    #: The layer whose output is the conv's channels as the next block sees them: the
    #: activation that follows it (through normalisation or dropout), else the conv itself.
    readout: str
    filters: int


def _consumers(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    out: dict[str, list[keras.layers.Layer]] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for tensor in keras.tree.flatten(layer.input):
            out.setdefault(tensor._keras_history.operation.name, []).append(layer)
    return out


def _has_own_activation(layer: keras.layers.Layer) -> bool:
    activation = getattr(layer, "activation", None)
    return activation is not None and activation is not keras.activations.linear


def feature_blocks(model: keras.Model) -> list[FeatureBlock]:
    """The network's 2-D convs in order, each with its readout layer.

    Found by walking the Keras graph from each conv to the layers that consume its output,
    not by layer names, so it holds for any architecture and for models loaded from a run
    without their config; a network without convs has none."""
    consumers = _consumers(model)
    blocks = []
    for layer in model.layers:
        if not isinstance(layer, layers.Conv2D):
            continue
        readout, node = layer.name, layer
        while not _has_own_activation(node):
            following = consumers.get(node.name, [])
            if len(following) != 1:
                break
            node = following[0]
            if isinstance(node, ACTIVATIONS):
                readout = node.name
                break
            if not isinstance(node, PASS_THROUGH):
                break
        blocks.append(FeatureBlock(layer.name, readout, int(layer.filters)))
    return blocks
