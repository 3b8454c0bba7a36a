"""Where a dream reads the network: the layers it may amplify, by name, and the default one.

The conv blocks themselves come from `instruments.model.feature_blocks`, which walks the
Keras graph, so a dream holds for any architecture, whatever its layers are named.
"""

from __future__ import annotations

import keras

from nsynth_research.core.errors import UserError
from nsynth_research.instruments.model import feature_blocks


def layer_names(model: keras.Model) -> list[str]:
    """Every layer a dream can amplify: all but the input, in network order."""
    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def output_layer(model: keras.Model) -> str:
    """The layer that produces the model's output (the logits)."""
    return model.output._keras_history.operation.name


def check_layer(model: keras.Model, name: str | None) -> str:
    """The layer to amplify: `name`, or by default the last conv block's readout (the
    deepest layer that still has time and frequency axes; without convs, the layer that
    feeds the logits). An unknown name is one line listing all."""
    names = layer_names(model)
    if name is None:
        blocks = feature_blocks(model)
        if blocks:
            return blocks[-1].readout
        logits = model.get_layer(output_layer(model))
        return logits.input._keras_history.operation.name
    if name not in names:
        raise UserError(f"unknown layer {name!r}; valid layers: {', '.join(names)}")
    return name
