"""A convolution-free baseline (`arch: mlp`): every frequency band summarised over the whole
note, then dense layers.

It sees a note's long-term spectrum and nothing of how the note evolves, so what a CNN scores
above it is what time patterns (attack, vibrato, decay) add; and it trains in seconds.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from nsynth_research.instruments.models.plan import Architecture, Plan


class MlpConfig(Architecture):
    """Mean (or max) of each band over time, flattened, then dense layers to 11 logits."""

    arch: Literal["mlp"] = "mlp"
    #: How a band is summarised over the note's frames.
    pool: Literal["average", "max"] = "average"
    #: Adjacent frequency bins summarised together into one input (1: every bin its own).
    band: int = Field(default=1, ge=1)
    #: Hidden dense widths; the last is the embedding.
    dense: tuple[Annotated[int, Field(ge=1)], ...] = Field(default=(256, 256), min_length=1)
    #: Dropout rate after each hidden dense layer (0: none).
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    def plan(self, frames: int, bins: int) -> Plan:
        window = (frames, self.band)
        plan = Plan(frames, bins).pool("summary", self.pool, window, window, key="model.band")
        return plan.head("flatten").embedding(self.dense, self.dropout)
