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


@dataclass(frozen=True)
class FeatureBlock:
    """One conv block of a built (or loaded) network, by layer name."""

    conv: str
    #: Where the block's channels are read: its activation when it has one (what the next
    #: block sees), else the conv itself.
    activation: str


def feature_blocks(model: keras.Model) -> list[FeatureBlock]:
    """Each conv block's conv and activation layers, in network order.

    Found by layer type along the network (a conv opens a block; normalisation and
    activation layers right after it belong to it), so it holds for any architecture and for
    models loaded from a run without their config; a network without convs has none.
    """
    blocks: list[FeatureBlock] = []
    is_open = False
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            blocks.append(FeatureBlock(layer.name, layer.name))
            is_open = True
        elif is_open and isinstance(layer, (layers.ReLU, layers.Activation)):
            blocks[-1] = FeatureBlock(blocks[-1].conv, layer.name)
        elif not isinstance(layer, layers.BatchNormalization):
            is_open = False
    return blocks
