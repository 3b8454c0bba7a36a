"""The three kinds of dream, as arrays: class visualisations, DeepDream of a note, channels.

Nothing here writes files or talks to MLflow; `report` turns the results into pictures,
audio and a page, and `run` logs them. Every dream is a normalised model input (frames,
bins), the space the gradient ascent climbs in, with the per-step curves of its climb.
Each kind is one batch: every family, seed and start of the class dreams climb together, and
so do all visualised channels of all blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from nsynth_research.dream.ascent import Bounds, ascend
from nsynth_research.dream.config import DreamConfig
from nsynth_research.dream.objectives import (
    channel_objective,
    class_objective,
    layer_objective,
    probabilities,
)
from nsynth_research.instruments.families import FAMILIES
from nsynth_research.instruments.model import FeatureBlock


@dataclass
class Dream:
    """One input to show and hear, with what the model made of it and what went wrong."""

    #: Artifact path without extension, e.g. "class/flute/noise_s0".
    key: str
    title: str
    #: Normalised model input (frames, bins).
    x: np.ndarray
    #: "class", "start" (a class dream's real start note), "deepdream-source", "deepdream"
    #: or "channel".
    kind: str
    #: Family index the dream climbs (class dreams) or the note's own family (real notes).
    target: int | None = None
    #: "noise" or "note" for class dreams.
    start: str = ""
    seed: int = 0
    #: Key of the real note a class dream started from.
    start_key: str | None = None
    probs_before: np.ndarray | None = None
    probs_after: np.ndarray | None = None
    #: Per-step values of the climb (steps,), by name ("score", "target_logit", ...).
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    #: Why this dream did not work (empty: it did); shown on the page and logged.
    flags: list[str] = field(default_factory=list)
    #: Audio facts (peak, gain, loudness) and the round trip, filled by `report`.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reached(self) -> bool | None:
        """Whether the model's top family for the dreamed input is the target."""
        if self.target is None or self.probs_after is None:
            return None
        return int(np.argmax(self.probs_after)) == self.target


@dataclass(frozen=True)
class ClassStart:
    """One row of the class-dream batch."""

    family: int
    start: str
    seed: int
    x: np.ndarray
    start_key: str | None = None
    label: str = ""


def class_dreams(
    model: keras.Model,
    starts: Sequence[ClassStart],
    cfg: DreamConfig,
    bounds: Bounds,
    rng: np.random.Generator,
) -> list[Dream]:
    """Climb each start's target family (scored as `cfg.objective`), all in one batch."""
    targets = np.array([s.family for s in starts])
    batch = np.stack([s.x for s in starts])
    before = probabilities(model, batch)
    climbed = ascend(
        class_objective(model, targets, cfg.objective), batch, cfg.classes, bounds, rng
    )
    after = probabilities(model, climbed.x)
    dreams = []
    for i, s in enumerate(starts):
        name = FAMILIES[s.family]
        dreams.append(
            Dream(
                key=f"class/{name}/{s.start}_s{s.seed}",
                title=f"{name} from {s.label or s.start} (seed {s.seed})",
                x=climbed.x[i],
                kind="class",
                target=s.family,
                start=s.start,
                seed=s.seed,
                start_key=s.start_key,
                probs_before=before[i],
                probs_after=after[i],
                curves={k: v[:, i] for k, v in climbed.curves.items()},
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
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A real note with `layer`'s activations amplified (DeepDream's L2 objective)."""
    climbed = ascend(layer_objective(model, layer), note_x[None], cfg.deepdream, bounds, rng)
    return climbed.x[0], {k: v[:, 0] for k, v in climbed.curves.items()}


def picked_channels(count: int, wanted: int) -> np.ndarray:
    """`wanted` channel indices evenly spread over 0..count-1 (all of them if fewer)."""
    return np.unique(np.linspace(0, count - 1, min(wanted, count)).round().astype(int))


def channel_targets(blocks: Sequence[FeatureBlock], per_layer: int) -> list[tuple[str, int]]:
    """(readout layer, channel) of every visualised channel, block by block."""
    return [(b.readout, int(c)) for b in blocks for c in picked_channels(b.filters, per_layer)]


def channel_dreams(
    model: keras.Model,
    targets: Sequence[tuple[str, int]],
    cfg: DreamConfig,
    bounds: Bounds,
    rng: np.random.Generator,
    shape: tuple[int, int],
) -> list[Dream]:
    """Inputs (from faint noise) that maximise each (layer, channel), all in one batch."""
    start = cfg.noise_std * rng.standard_normal((len(targets), *shape)).astype(np.float32)
    climbed = ascend(channel_objective(model, targets), start, cfg.channels, bounds, rng)
    return [
        Dream(
            key=f"channels/{layer}_{c}",
            title=f"{layer} channel {c}",
            x=climbed.x[i],
            kind="channel",
            curves={k: v[:, i] for k, v in climbed.curves.items()},
            extra={"layer": layer, "channel": c},
        )
        for i, (layer, c) in enumerate(targets)
    ]
