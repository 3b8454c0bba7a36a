"""The dream's own config: how hard to climb, how to keep the climb readable, what to show.

It is logged with every dream run, as params and as `dream_config.yaml`, so a dream is re-made
from the model run id and this file alone. Unknown keys and bad values are errors that name
the key, like every other config of the project; family and layer names are checked against
the label space and the model, in one line that lists the valid names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from nsynth_research.core.config import Section, load_tree, validate
from nsynth_research.core.errors import UserError
from nsynth_research.instruments.families import FAMILIES

DREAM_CONFIG_ARTIFACT = "dream_config.yaml"

#: What a class dream maximises, for target logit z_t of logits z:
#: logit: z_t; contrast: z_t minus the mean of the other logits; log_softmax: log p_t;
#: probability: p_t. Only z_t can be raised by raising every logit at once.
ClassObjectiveKind = Literal["logit", "contrast", "log_softmax", "probability"]
OBJECTIVES: tuple[str, ...] = ("logit", "contrast", "log_softmax", "probability")


class AscentConfig(Section):
    """One gradient ascent on the normalised input: steps, step size and the regularisers."""

    #: Steps per octave.
    steps: int = Field(default=24, ge=1)
    #: Step length in normalised-feature units; each step's gradient is scaled to mean |g| = 1.
    learning_rate: float = Field(default=0.05, gt=0)
    #: Coarse-to-fine scales (DeepDream's octaves): the first optimises a 1/scale^(n-1) copy.
    octaves: int = Field(default=2, ge=1)
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
    #: Class objective (see `ClassObjectiveKind`); the default is the one measured to reach
    #: its target for the most families on the default champion (`benchmarks dream`).
    objective: ClassObjectiveKind = "log_softmax"
    #: Dreams per family and start kind: that many noise seeds and that many distinct real
    #: start notes.
    seeds: int = Field(default=3, ge=1)
    #: Layer amplified by the DeepDream of a note (None: the activation of the last conv).
    layer: str | None = None
    #: Std of the noise the class dreams start from (normalised units: train mean +- noise).
    noise_std: float = Field(default=0.1, ge=0)
    classes: AscentConfig = AscentConfig()
    #: Gentle on purpose: the note should stay recognisable under what the layer adds.
    deepdream: AscentConfig = AscentConfig(steps=10, learning_rate=0.01, tv=0.1, octaves=3)
    channels: AscentConfig = AscentConfig(steps=24, octaves=2)
    #: Channels visualised per conv block, evenly spaced over the block's channels.
    channels_per_layer: int = Field(default=4, ge=1)
    #: Real validation notes shown beside each class and channel dream (the notes that
    #: most activate it).
    examples: int = Field(default=3, ge=0)
    #: Validation notes scored to find those examples and the start notes (None: all).
    example_pool: int | None = Field(default=None, ge=1)
    #: Griffin-Lim iterations per WAV (fast Griffin-Lim, momentum 0.99); 16 classify the
    #: same as 64 on the default champion, in less time (`benchmarks dream`).
    griffin_lim_iters: int = Field(default=16, ge=1)
    #: A dream whose mean frame energy is this far below the loudest real frame is flagged
    #: as maximised by silence.
    silence_db: float = Field(default=-60.0, lt=0)
    #: Integrated loudness (ITU-R BS.1770, LUFS) every player on the page is matched to.
    page_loudness: float = Field(default=-23.0, lt=0)


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
