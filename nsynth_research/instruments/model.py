"""The configurable CNN: the seed's 1-D-over-time design and its 2-D relatives in one builder.

The network is built only from `ModelConfig`, so a logged config alone rebuilds it; shape
checks already happened in `config.check_model_fits`, so Keras errors here are bugs, not
user errors.
"""

from __future__ import annotations

import keras
from keras import layers

from nsynth_research.instruments.config import FeatureConfig, ModelConfig, pool_window
from nsynth_research.instruments.families import NUM_CLASSES

#: Name of the penultimate dense layer whose output is the learned embedding.
EMBEDDING_LAYER = "embedding"
INPUT_NAME = "spectrogram"


def build_model(
    cfg: ModelConfig, features: FeatureConfig, precision: str = "float32"
) -> keras.Model:
    """Conv blocks -> flatten/global average/max pool (`head`) -> dense layers (last =
    embedding) -> 11 logits.

    `precision` is applied per layer (not as Keras' global policy) so that building one model
    never changes how another is built; logits stay float32 for a stable softmax.
    """
    inputs = keras.Input(shape=(features.frames, features.bins, 1), name=INPUT_NAME)
    x = inputs
    freq = features.bins
    for block, filters in enumerate(cfg.filters):
        first = block == 0
        kernel = cfg.first_kernel if first else cfg.kernel
        padding = cfg.first_padding if first else "same"
        x = layers.Conv2D(
            filters,
            kernel,
            strides=cfg.first_stride if first else (1, 1),
            padding=padding,
            use_bias=not cfg.batch_norm,
            dtype=precision,
            name=f"conv{block}",
        )(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization(dtype=precision, name=f"bn{block}")(x)
        x = layers.ReLU(dtype=precision, name=f"relu{block}")(x)
        freq = x.shape[2]
        size, stride = pool_window(cfg, freq)
        pool = layers.MaxPooling2D if cfg.pool == "max" else layers.AveragePooling2D
        x = pool(size, strides=stride, dtype=precision, name=f"pool{block}")(x)
    head = "gap" if cfg.global_pool else cfg.head
    if head == "gap":
        x = layers.GlobalAveragePooling2D(dtype=precision, name="global_pool")(x)
    elif head == "gmp":
        x = layers.GlobalMaxPooling2D(dtype=precision, name="global_max_pool")(x)
    else:
        x = layers.Flatten(dtype=precision, name="flatten")(x)
    for i, width in enumerate(cfg.dense):
        last = i == len(cfg.dense) - 1
        x = layers.Dense(
            width,
            activation="relu",
            dtype=precision,
            name=EMBEDDING_LAYER if last else f"dense{i}",
        )(x)
        if cfg.dropout > 0:
            x = layers.Dropout(cfg.dropout, dtype=precision, name=f"dropout{i}")(x)
    logits = layers.Dense(NUM_CLASSES, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="nsynth_cnn")


def embedding_model(model: keras.Model) -> keras.Model:
    """A model giving (logits, embedding) in one forward pass, sharing the trained weights."""
    return keras.Model(
        model.input, [model.output, model.get_layer(EMBEDDING_LAYER).output], name="with_embedding"
    )
