"""A network described as data: the layers in order, each with its Keras arguments and the
shape it outputs.

An architecture turns its config section into a `Plan`; the config validator reads the shapes
from it and `instruments.model.build_model` instantiates exactly its layers. One description
serves both, so a config that validates builds, with the shapes it was checked against. The
module is pure Python: a config is checked without starting TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from nsynth_research.core.config import Section

#: Every layer kind a plan can hold; the Keras builder maps each to one Keras layer class.
Kind = Literal[
    "conv",
    "batch_norm",
    "relu",
    "max_pool",
    "average_pool",
    "flatten",
    "global_average_pool",
    "global_max_pool",
    "dense",
    "dropout",
]
#: One example's shape, batch axis left out: (time, frequency, channels) or (units,).
Shape = tuple[int, ...]
#: Name of the last hidden dense layer, whose output is the learned embedding.
EMBEDDING_LAYER = "embedding"


@dataclass(frozen=True)
class LayerSpec:
    kind: Kind
    name: str
    #: Output shape of one example.
    shape: Shape
    #: Keyword arguments of the Keras layer (dtype and name come from the builder).
    args: dict[str, Any] = field(default_factory=dict)


class Plan:
    """Layers appended in network order, each output shape computed as Keras computes it.

    A layer that cannot fit the map it receives raises ValueError naming `key`, the config
    key that decided it, so a bad config fails at load time by that key.
    """

    def __init__(self, frames: int, bins: int) -> None:
        #: The network's input: one channel of `frames` x `bins` features.
        self.input: Shape = (frames, bins, 1)
        self.layers: list[LayerSpec] = []

    @property
    def shape(self) -> Shape:
        """What the next layer receives."""
        return self.layers[-1].shape if self.layers else self.input

    def add(self, kind: Kind, name: str, shape: Shape | None = None, **args: Any) -> Plan:
        """A layer; without `shape` it keeps its input's (normalisation, activation, dropout)."""
        self.layers.append(LayerSpec(kind, name, self.shape if shape is None else shape, args))
        return self

    def conv(
        self,
        name: str,
        filters: int,
        kernel: tuple[int, int],
        *,
        strides: tuple[int, int],
        padding: Literal["valid", "same"],
        use_bias: bool,
        key: str,
    ) -> Plan:
        time, freq, _ = self.shape
        if padding == "valid":
            for axis, size, have, unit in (
                ("frequency", kernel[1], freq, "frequency bins"),
                ("time", kernel[0], time, "frames"),
            ):
                if size > have:
                    raise ValueError(
                        f"{key} {axis} size {size} exceeds the {have} {unit} at layer {name}"
                    )
            out = ((time - kernel[0]) // strides[0] + 1, (freq - kernel[1]) // strides[1] + 1)
        else:
            out = (math.ceil(time / strides[0]), math.ceil(freq / strides[1]))
        return self.add(
            "conv",
            name,
            (*out, filters),
            filters=filters,
            kernel_size=tuple(kernel),
            strides=tuple(strides),
            padding=padding,
            use_bias=use_bias,
        )

    def pool(
        self,
        name: str,
        kind: Literal["max", "average"],
        size: tuple[int, int],
        strides: tuple[int, int],
        *,
        key: str,
        fix: str = "",
    ) -> Plan:
        """A valid-padded pooling window; `fix` says how to repair a window that does not fit."""
        time, freq, channels = self.shape
        for want, have, axis in ((size[0], time, "time"), (size[1], freq, "frequency")):
            if want > have:
                raise ValueError(
                    f"{key} {list(size)} shrinks {axis} below 1 at layer {name} ({axis} "
                    f"{have}){'; ' + fix if fix else ''}"
                )
        out = ((time - size[0]) // strides[0] + 1, (freq - size[1]) // strides[1] + 1)
        return self.add(
            "max_pool" if kind == "max" else "average_pool",
            name,
            (*out, channels),
            pool_size=tuple(size),
            strides=tuple(strides),
        )

    def head(self, kind: Literal["flatten", "gap", "gmp"]) -> Plan:
        """Feature map -> vector: every position (flatten), or the mean / max over time and
        frequency of each channel."""
        if kind == "flatten":
            return self.add("flatten", "flatten", (math.prod(self.shape),))
        channels = (self.shape[-1],)
        if kind == "gap":
            return self.add("global_average_pool", "global_pool", channels)
        return self.add("global_max_pool", "global_max_pool", channels)

    def embedding(self, widths: tuple[int, ...], dropout: float) -> Plan:
        """Hidden ReLU dense layers, the last named the embedding, each followed by dropout
        when `dropout` > 0."""
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            self.add(
                "dense",
                EMBEDDING_LAYER if last else f"dense{i}",
                (width,),
                units=width,
                activation="relu",
            )
            if dropout > 0:
                self.add("dropout", f"dropout{i}", rate=dropout)
        return self


class Architecture(Section):
    """A model architecture's config section: its `arch` name and the plan it describes.

    Subclasses declare `arch: Literal["<name>"] = "<name>"` and implement `plan`; the
    registry (`models.registry`) makes `model.arch: <name>` select them.
    """

    #: The architecture this section configures; its other keys are that architecture's.
    arch: str

    def plan(self, frames: int, bins: int) -> Plan:
        """The layers from a `frames` x `bins` x 1 input to the embedding (the builder adds the
        logits); raises ValueError naming the key of a layer that does not fit."""
        raise NotImplementedError
