"""Continuing a melody: feed the primer to set the context, then sample one event at a time,
feeding each back, until the requested bars are exactly full.

The classic stopped once a bar (4 beats) was reached and could overshoot it. Here an event
is masked out before sampling (the rest of the distribution is renormalised) when it is
longer than the time left, or when what would be left could not be filled by any sum of the
vocabulary's durations (after a triplet, say); so the generated part always fills exactly
`bars` bars. UNK and BOS are never sampled. Temperature 0 is greedy decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import lcm

import keras
import numpy as np

from nsynth_research.core.errors import UserError
from nsynth_research.melody.tokens import BOS_ID, UNK_ID, Event, Vocabulary


def check_request(bars: int, temperature: float) -> None:
    if bars < 1:
        raise UserError(f"BARS={bars}: generate at least one bar")
    if temperature < 0:
        raise UserError(f"TEMPERATURE={temperature}: use 0 (greedy) or a positive temperature")


def fillable(total: Fraction, durations: Sequence[Fraction]) -> dict[Fraction, bool]:
    """For every time left t <= total on the durations' common grid: can some sequence of
    these durations add up to exactly t? (An unbounded subset-sum, by dynamic programming.)"""
    grid = Fraction(1, lcm(total.denominator, *(d.denominator for d in durations)))
    steps = [int(d / grid) for d in set(durations)]
    n = int(total / grid)
    ok = np.zeros(n + 1, dtype=bool)
    ok[0] = True
    for t in range(1, n + 1):
        ok[t] = any(s <= t and ok[t - s] for s in steps)
    return {grid * t: bool(ok[t]) for t in range(n + 1)}


def continue_melody(
    model: keras.Model,
    vocab: Vocabulary,
    primer_ids: Sequence[int],
    *,
    sequence_length: int,
    bar: Fraction,
    bars: int,
    temperature: float,
    rng: np.random.Generator,
) -> list[Event]:
    """Events after the primer whose durations add up to exactly `bars` * `bar` quarters."""
    check_request(bars, temperature)
    durations = np.array(
        [
            Fraction(0) if i in (UNK_ID, BOS_ID) else vocab.event(i).duration
            for i in range(len(vocab))
        ],
        dtype=object,
    )
    context = [BOS_ID] * sequence_length + list(primer_ids)
    remaining = bar * bars
    can_fill = fillable(remaining, [d for d in durations if d > 0])
    if not can_fill[remaining]:
        raise UserError(f"no sequence of the model's note lengths fills {bars} bars of {bar}")
    out: list[Event] = []
    while remaining > 0:
        window = np.array([context[-sequence_length:]], dtype=np.int32)
        logits = np.asarray(model(window, training=False), dtype=np.float64)[0]
        allowed = np.array([0 < d <= remaining and can_fill[remaining - d] for d in durations])
        logits = np.where(allowed, logits, -np.inf)
        if temperature == 0:
            choice = int(np.argmax(logits))
        else:
            scaled = (logits - logits[allowed].max()) / temperature
            probs = np.exp(scaled)
            choice = int(rng.choice(len(probs), p=probs / probs.sum()))
        event = vocab.event(choice)
        out.append(event)
        context.append(choice)
        remaining -= event.duration
    return out
