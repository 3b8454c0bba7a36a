"""The seed CNN and its 1-D/2-D relatives: a first conv, conv/BN/ReLU/pool blocks, a head,
dense layers to the embedding (`arch: cnn`, the default)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from nsynth_research.instruments.models.plan import Architecture, Plan


class CnnConfig(Architecture):
    """The CNN: a first conv, then conv/BN/ReLU/pool blocks, then dense layers to 11 logits."""

    arch: Literal["cnn"] = "cnn"
    #: First conv kernel (time, frequency); frequency equal to the number of bins with
    #: padding "valid" collapses frequency, making the net a 1-D conv over time.
    first_kernel: tuple[int, int] = (3, 513)
    first_padding: Literal["valid", "same"] = "valid"
    #: First conv stride (time, frequency): a frequency stride makes a narrow 2-D first kernel
    #: a learned, overlapping filterbank instead of a full-resolution (and 50x costlier) 2-D map.
    first_stride: tuple[int, int] = (1, 1)
    #: Kernel (time, frequency) of every later conv.
    kernel: tuple[int, int] = (3, 1)
    #: Filters of the first conv, then of each later block; its length sets the depth.
    filters: tuple[int, ...] = (64, 64, 128, 128)
    pool: Literal["max", "average"] = "max"
    #: Pooling window and stride (time, frequency) after every block; the frequency size is
    #: clipped to the bins left, so one setting serves 1-D (frequency collapsed) and 2-D nets.
    pool_size: tuple[int, int] = (3, 1)
    pool_stride: tuple[int, int] = (3, 1)
    #: What turns the last feature map into a vector: flatten keeps every (time, frequency)
    #: position (most dense weights, and a feature at another pitch is another input); gap /
    #: gmp average / take the max over time and frequency, so a timbre cue counts wherever it
    #: sits and the dense layers stay small.
    head: Literal["flatten", "gap", "gmp"] = "flatten"
    #: Hidden dense widths; the last is the embedding.
    dense: tuple[int, ...] = (256, 256)
    #: Dropout rate after each hidden dense layer (0: none).
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    #: Batch normalisation after every conv (which then has no bias of its own).
    batch_norm: bool = True

    @model_validator(mode="before")
    @classmethod
    def _global_pool(cls, data: Any) -> Any:
        """Logged configs of reproducible runs may still spell the head as `global_pool`:
        true is `head: gap` (whatever `head` says, as those runs were built), false the
        configured head. The key is dropped so a resolved config spells the head one way."""
        if not isinstance(data, dict) or "global_pool" not in data:
            return data
        data = dict(data)
        value = data.pop("global_pool")
        if not isinstance(value, bool):
            raise ValueError(
                f"model.global_pool must be true or false (got {value!r}); prefer model.head"
            )
        if value:
            data["head"] = "gap"
        return data

    @model_validator(mode="after")
    def _positive(self) -> CnnConfig:
        keys = ("first_kernel", "first_stride", "kernel", "pool_size", "pool_stride")
        for key in (*keys, "filters", "dense"):
            values = getattr(self, key)
            if not values or any(v < 1 for v in values):
                raise ValueError(f"model.{key} must be non-empty positive integers, got {values}")
        return self

    def plan(self, frames: int, bins: int) -> Plan:
        plan = Plan(frames, bins)
        for block, filters in enumerate(self.filters):
            first = block == 0
            plan.conv(
                f"conv{block}",
                filters,
                self.first_kernel if first else self.kernel,
                strides=self.first_stride if first else (1, 1),
                padding=self.first_padding if first else "same",
                use_bias=not self.batch_norm,
                key="model.first_kernel" if first else "model.kernel",
            )
            if self.batch_norm:
                plan.add("batch_norm", f"bn{block}")
            plan.add("relu", f"relu{block}")
            (pt, pf), (st, sf) = self.pool_size, self.pool_stride
            freq = plan.shape[1]
            if freq < pf:
                pf, sf = freq, max(1, freq)
            plan.pool(
                f"pool{block}",
                self.pool,
                (pt, pf),
                (st, sf),
                key="model.pool_size",
                fix="use fewer blocks (model.filters) or a smaller pool",
            )
        return plan.head(self.head).embedding(self.dense, self.dropout)
