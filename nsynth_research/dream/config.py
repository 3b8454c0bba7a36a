"""The dream's own config: how hard to climb, how to keep the climb readable, what to show.

It is logged with every dream run (`dream_config.yaml`) together with its seed, so a dream is
re-made from the model run id and this file alone. Unknown keys and bad values are errors
that name the key, like every other config of the project; family and layer names are
checked against the label space and the model, in one line that lists the valid names.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from nsynth_research.core.config import Section, load_tree, validate
from nsynth_research.core.errors import UserError
from nsynth_research.instruments.families import FAMILIES

DREAM_CONFIG_ARTIFACT = "dream_config.yaml"


class AscentConfig(Section):
    """One gradient ascent on the normalised input: steps, step size and the regularisers."""

    #: Steps per octave.
    steps: int = Field(default=40, ge=1)
    #: Step length in normalised-feature units; each step's gradient is scaled to mean |g| = 1.
    learning_rate: float = Field(default=0.05, gt=0)
    #: Coarse-to-fine scales (DeepDream's octaves): the first optimises a 1/scale^(n-1) copy.
    octaves: int = Field(default=3, ge=1)
    octave_scale: float = Field(default=1.6, ge=1.0)
    #: Weight of the mean squared input (pulls towards the train mean, i.e. 0).
    l2: float = Field(default=0.02, ge=0)
    #: Weight of the mean absolute total variation over time and frequency.
    tv: float = Field(default=0.5, ge=0)
    #: Largest random roll (frames and bins) applied before each step and undone after.
    jitter: int = Field(default=4, ge=0)
    #: Gaussian blur sigma (in cells) applied every `blur_every` steps; 0 turns it off.
    blur_sigma: float = Field(default=0.5, ge=0)
    blur_every: int = Field(default=4, ge=1)


class DreamConfig(Section):
    """Everything that changes a dream's result; nothing else does."""

    seed: int = 0
    #: Families to dream (empty: all 11).
    families: tuple[str, ...] = ()
    #: Layer amplified by the DeepDream of a note (None: the last ReLU of the conv stack).
    layer: str | None = None
    #: Std of the noise the class dreams start from (normalised units: train mean +- noise).
    noise_std: float = Field(default=0.1, ge=0)
    classes: AscentConfig = AscentConfig()
    #: Gentle on purpose: the note should stay recognisable under what the layer adds.
    deepdream: AscentConfig = AscentConfig(steps=10, learning_rate=0.01, l2=0.02, tv=0.1)
    channels: AscentConfig = AscentConfig(steps=30, octaves=2)
    #: Channels visualised per conv layer, evenly spaced over the layer's channels.
    channels_per_layer: int = Field(default=4, ge=1)
    #: Griffin-Lim iterations per WAV.
    griffin_lim_iters: int = Field(default=64, ge=1)


def load_dream_config(
    path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> DreamConfig:
    """YAML file (optional) + `key=value` overrides -> validated DreamConfig."""
    config = validate(
        load_tree(path, overrides), str(path) if path else "dream config", DreamConfig
    )
    check_families(config.families)
    return config


def check_families(names: tuple[str, ...]) -> tuple[str, ...]:
    """The families to dream, in label order; an unknown name is one line with the valid ones."""
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise UserError(
            f"unknown family {', '.join(map(repr, unknown))}; valid families: {', '.join(FAMILIES)}"
        )
    return tuple(f for f in FAMILIES if f in names) if names else FAMILIES
