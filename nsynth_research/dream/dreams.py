"""The three kinds of dream, as arrays: class visualisations, DeepDream of a note, channels.

Nothing here writes files or talks to MLflow; `report` turns the results into pictures,
audio and a page, and `run` logs them. Every dream is a normalised model input (frames,
bins), the space the gradient ascent climbs in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from nsynth_research.dream.ascent import Bounds, ascend
from nsynth_research.dream.config import DreamConfig
from nsynth_research.dream.objectives import (
    channel_layer,
    channel_objective,
    class_objective,
    conv_layers,
    layer_objective,
    probabilities,
)
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.families import FAMILIES, FAMILY_INDEX


@dataclass
class Dream:
    """One input to show and hear, with what the model made of it."""

    #: Artifact path without extension, e.g. "class/flute_noise".
    key: str
    title: str
    #: Normalised model input (frames, bins).
    x: np.ndarray
    #: "class", "source" (a class dream's start note), "deepdream-source", "deepdream" or
    #: "channel".
    kind: str
    #: Family index the dream climbs (class dreams) or the note's family (sources).
    target: int | None = None
    prob_before: float | None = None
    prob_after: float | None = None
    #: Filled by the round trip: target-family probability and top family of the WAV.
    extra: dict[str, float | str] = field(default_factory=dict)


def source_notes(valid: list[Note], families: tuple[str, ...]) -> dict[str, Note]:
    """For each target family, the first validation note of the next family (in label order)
    that has validation notes: a real note of *another* family to dream away from."""
    by_family: dict[int, Note] = {}
    for note in sorted(valid, key=lambda n: n.note_str):
        by_family.setdefault(note.family, note)
    out = {}
    for name in families:
        f = FAMILY_INDEX[name]
        others = [(f + k) % len(FAMILIES) for k in range(1, len(FAMILIES))]
        found = next((by_family[g] for g in others if g in by_family), None)
        if found is not None:
            out[name] = found
    return out


def class_dreams(
    model: keras.Model,
    families: tuple[str, ...],
    starts: dict[str, np.ndarray],
    cfg: DreamConfig,
    bounds: Bounds,
    rng: np.random.Generator,
) -> list[Dream]:
    """Climb each family's logit from each start; `starts` maps a start name ("noise", or
    "from <family>") per target to a (len(families), frames, bins) batch."""
    targets = np.array([FAMILY_INDEX[f] for f in families])
    rows = np.arange(len(targets))
    objective = class_objective(model, targets)
    dreams = []
    for start, batch in starts.items():
        before = probabilities(model, batch)[rows, targets]
        out = ascend(objective, batch, cfg.classes, bounds, rng)
        after = probabilities(model, out)[rows, targets]
        for i, name in enumerate(families):
            dreams.append(
                Dream(
                    key=f"class/{name}_{start}",
                    title=f"{name} ({start})",
                    x=out[i],
                    kind="class",
                    target=int(targets[i]),
                    prob_before=float(before[i]),
                    prob_after=float(after[i]),
                    extra={"start": start},
                )
            )
    return dreams


def deep_dream(
    model: keras.Model,
    layer: str,
    note_x: np.ndarray,
    cfg: DreamConfig,
    bounds: Bounds,
    rng: np.random.Generator,
) -> np.ndarray:
    """A real note with `layer`'s activations amplified (DeepDream's L2 objective)."""
    return ascend(layer_objective(model, layer), note_x[None], cfg.deepdream, bounds, rng)[0]


def picked_channels(count: int, wanted: int) -> np.ndarray:
    """`wanted` channel indices evenly spread over 0..count-1 (all of them if fewer)."""
    return np.unique(np.linspace(0, count - 1, min(wanted, count)).round().astype(int))


def channel_dreams(
    model: keras.Model,
    cfg: DreamConfig,
    bounds: Bounds,
    rng: np.random.Generator,
    shape: tuple[int, int],
) -> list[Dream]:
    """For every conv block, inputs (from faint noise) that maximise a few of its channels."""
    dreams = []
    for conv in conv_layers(model):
        layer = channel_layer(model, conv)
        channels = picked_channels(int(model.get_layer(conv).filters), cfg.channels_per_layer)
        start = cfg.noise_std * rng.standard_normal((len(channels), *shape)).astype(np.float32)
        out = ascend(channel_objective(model, layer, channels), start, cfg.channels, bounds, rng)
        for c, x in zip(channels, out, strict=True):
            dreams.append(
                Dream(
                    key=f"channels/{layer}_{c}",
                    title=f"{layer} channel {c}",
                    x=x,
                    kind="channel",
                    extra={"layer": layer, "channel": int(c)},
                )
            )
    return dreams
