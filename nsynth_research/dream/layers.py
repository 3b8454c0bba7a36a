"""Where a dream reads the network: its conv blocks, found by walking the Keras graph.

A conv's channels are read where the next block sees them: after the activation that follows
the conv (through any normalisation or dropout in between), or on the conv itself when it
carries its own activation or none follows. The walk goes from each conv to the layers that
consume its output, so it holds for any model built of Keras layers, whatever they are named.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from nsynth_research.core.errors import UserError

#: Layers that sit between a conv and its activation without changing what a channel is.
PASS_THROUGH = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
)
ACTIVATIONS = (
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
)


@dataclass(frozen=True)
class Block:
    """One conv and the layer whose output is its channels as the network uses them."""

    conv: str
    readout: str
    filters: int


def layer_names(model: keras.Model) -> list[str]:
    """Every layer a dream can amplify: all but the input, in network order."""
    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def output_layer(model: keras.Model) -> str:
    """The layer that produces the model's output (the logits)."""
    return model.output._keras_history.operation.name


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


def conv_blocks(model: keras.Model) -> list[Block]:
    """The model's 2-D convs in network order, each with its readout layer."""
    consumers = _consumers(model)
    blocks = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        readout = layer.name
        node = layer
        while not _has_own_activation(node):
            nxt = consumers.get(node.name, [])
            if len(nxt) != 1:
                break
            node = nxt[0]
            if isinstance(node, ACTIVATIONS):
                readout = node.name
                break
            if not isinstance(node, PASS_THROUGH):
                break
        blocks.append(Block(layer.name, readout, int(layer.filters)))
    return blocks


def check_layer(model: keras.Model, name: str | None) -> str:
    """The layer to amplify: `name`, or by default the last conv block's readout (the
    deepest layer that still has time and frequency axes; without convs, the layer that
    feeds the logits). An unknown name is one line listing all."""
    names = layer_names(model)
    if name is None:
        blocks = conv_blocks(model)
        if blocks:
            return blocks[-1].readout
        logits = model.get_layer(output_layer(model))
        return logits.input._keras_history.operation.name
    if name not in names:
        raise UserError(f"unknown layer {name!r}; valid layers: {', '.join(names)}")
    return name
