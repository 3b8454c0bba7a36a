"""Continuing melodies: feed each primer to set the context, then choose one event at a time,
feeding each back, until every requested bar is exactly full.

Several continuations run as one batch (one network call per step for all of them); any next-
event model fits, the Char-RNN or an n-gram baseline, through `step`: windows of the last
`sequence_length` ids in, logits (or log-probabilities) over the vocabulary out.

Before choosing, each step masks what cannot be written: UNK and BOS; an event longer than the
time left; an event after which the time left could not be filled by any sum of the
vocabulary's durations (after a triplet, say). The chooser is greedy (temperature 0) or
samples at a temperature, optionally from the top-k events or the nucleus (smallest set with
probability >= top-p); an optional calibration (`calibration.py`) then gives classes of events
(those crossing the next barline, those outside the key) the probability the corpus gives
them, because the network sees events, not barlines or key signatures.
A repetition guard forbids an event that would repeat an n-event figure already played; it
gives way when it would leave nothing to choose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import lcm

import numpy as np

from nsynth_research.core.errors import UserError
from nsynth_research.melody.tokens import BOS_ID, UNK_ID, Event, Vocabulary

#: windows (batch, sequence_length) of ids -> logits (batch, vocabulary)
Step = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SamplingOptions:
    """How the next event is chosen (temperature 0 is greedy; top_k 0 and top_p 1 are off)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    #: Forbid an event that would complete an n-event figure already in the melody (0: off).
    no_repeat_ngram: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def describe(self) -> str:
        if self.greedy:
            parts = ["greedy"]
        else:
            parts = [f"T={self.temperature:g}"]
            if self.top_k:
                parts.append(f"top-k {self.top_k}")
            if self.top_p < 1:
                parts.append(f"top-p {self.top_p:g}")
        if self.no_repeat_ngram:
            parts.append(f"no repeated {self.no_repeat_ngram}-event figure")
        return ", ".join(parts)


def check_request(bars: int, options: SamplingOptions) -> None:
    if bars < 1:
        raise UserError(f"BARS={bars}: generate at least one bar")
    if options.temperature < 0:
        raise UserError(
            f"TEMPERATURE={options.temperature}: use 0 (greedy) or a positive temperature"
        )
    if options.top_k < 0:
        raise UserError(f"TOP_K={options.top_k}: use 0 (off) or a positive number of events")
    if not 0 < options.top_p <= 1:
        raise UserError(f"TOP_P={options.top_p}: use a probability in (0, 1]; 1 is off")
    if options.no_repeat_ngram < 0 or options.no_repeat_ngram == 1:
        raise UserError(
            f"REPEAT_GUARD={options.no_repeat_ngram}: use 0 (off) or a figure of 2+ events"
        )


def fillable(total: Fraction, durations: Sequence[Fraction]) -> dict[Fraction, bool]:
    """For every time left t <= total on the durations' common grid: can some sequence of
    these durations add up to exactly t? (An unbounded subset-sum, by dynamic programming.)"""
    grid = Fraction(1, lcm(total.denominator, *(d.denominator for d in durations)))
    ok = _fill_table(int(total / grid), [int(d / grid) for d in set(durations)])
    return {grid * t: bool(ok[t]) for t in range(len(ok))}


def _fill_table(n: int, steps: Sequence[int]) -> np.ndarray:
    ok = np.zeros(n + 1, dtype=bool)
    ok[0] = True
    for t in range(1, n + 1):
        ok[t] = any(s <= t and ok[t - s] for s in steps)
    return ok


def top_k_mask(logits: np.ndarray, k: int) -> np.ndarray:
    """Per row, True for the k largest finite logits (ties at the k-th all kept)."""
    if k <= 0 or k >= logits.shape[1]:
        return np.isfinite(logits)
    kth = -np.sort(-logits, axis=1)[:, k - 1 : k]
    return np.isfinite(logits) & (logits >= kth)


def nucleus_mask(probs: np.ndarray, p: float) -> np.ndarray:
    """Per row, True for the smallest set of most likely events whose mass reaches p."""
    if p >= 1:
        return probs > 0
    order = np.argsort(-probs, axis=1)
    sorted_p = np.take_along_axis(probs, order, axis=1)
    before = np.cumsum(sorted_p, axis=1) - sorted_p  # mass of the more likely events
    keep_sorted = (before < p) & (sorted_p > 0)
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return keep


def project(probs: np.ndarray, members: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Rescale each row so that each class (members[row, c]) holds shares[row, c] of it, by
    the smallest change (one factor inside a class, one outside); a few rounds settle two
    classes that overlap. A class the row gives no probability, or all of it, is left."""
    out = probs.copy()
    for _ in range(3 if members.shape[1] > 1 else 1):
        for c in range(members.shape[1]):
            inside = np.where(members[:, c], out, 0.0).sum(axis=1, keepdims=True)
            ok = (inside > 1e-12) & (inside < 1 - 1e-12)
            target = shares[:, c : c + 1]
            factor = np.where(
                members[:, c],
                np.where(ok, target / np.maximum(inside, 1e-12), 1.0),
                np.where(ok, (1 - target) / np.maximum(1 - inside, 1e-12), 1.0),
            )
            out = out * factor
    return out / out.sum(axis=1, keepdims=True)


def choose(
    logits: np.ndarray,
    options: SamplingOptions,
    rng: np.random.Generator,
    members: np.ndarray | None = None,
    shares: np.ndarray | None = None,
) -> np.ndarray:
    """One event id per row from masked logits (-inf = not allowed): temperature, top-k and
    nucleus first, then the calibration's classes (`project`), then the draw or the argmax."""
    scaled = logits if options.greedy else logits / options.temperature
    scaled = np.where(top_k_mask(scaled, options.top_k), scaled, -np.inf)
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    probs = np.exp(scaled)
    probs /= probs.sum(axis=1, keepdims=True)
    probs = np.where(nucleus_mask(probs, options.top_p), probs, 0.0)
    probs /= probs.sum(axis=1, keepdims=True)
    if members is not None and shares is not None and members.shape[1]:
        probs = project(probs, members, shares)
    if options.greedy:
        return probs.argmax(axis=1)
    cumulative = probs.cumsum(axis=1)
    draws = rng.random((len(probs), 1)) * cumulative[:, -1:]
    return np.minimum((cumulative < draws).sum(axis=1), probs.shape[1] - 1)


def repeated_figures(history: Sequence[int], n: int, vocab_size: int) -> np.ndarray:
    """True for each id that would end an n-event figure already in `history`."""
    banned = np.zeros(vocab_size, dtype=bool)
    if n < 2 or len(history) < n - 1:
        return banned
    tail = tuple(history[len(history) - n + 1 :])
    for i in range(len(history) - n + 1):
        if tuple(history[i : i + n - 1]) == tail:
            banned[history[i + n - 1]] = True
    return banned


@dataclass(frozen=True)
class Constraint:
    """A class of events and the share of the next event's probability it should get, per
    position in the bar (rows on a grid of `grid` quarters; one row: any position)."""

    members: np.ndarray
    shares: np.ndarray
    grid: Fraction

    def at(self, offset: Fraction) -> tuple[np.ndarray, float]:
        row = int(offset / self.grid) % len(self.shares)
        return self.members[row], float(self.shares[row])


@dataclass(frozen=True)
class Plan:
    """One continuation: its primer ids, how long to continue, and its bar grid."""

    primer_ids: tuple[int, ...]
    #: Quarters to generate.
    length: Fraction
    bar: Fraction
    #: Offset in the bar where the continuation starts.
    position: Fraction = Fraction(0)
    #: The calibration's classes and shares (`calibration.py`).
    constraints: tuple[Constraint, ...] = ()


def continue_batch(
    step: Step,
    vocab: Vocabulary,
    plans: Sequence[Plan],
    options: SamplingOptions,
    *,
    sequence_length: int,
    rng: np.random.Generator,
) -> list[list[Event]]:
    """Events after each plan's primer whose durations add up to exactly its `length`."""
    durations = [
        Fraction(0) if i in (UNK_ID, BOS_ID) else vocab.event(i).duration for i in range(len(vocab))
    ]
    notable = [d for d in durations if d > 0]
    grid = Fraction(
        1, lcm(*(d.denominator for d in notable), *(p.length.denominator for p in plans))
    )
    ticks = np.array([int(d / grid) for d in durations])
    remaining = np.array([int(p.length / grid) for p in plans])
    fill = _fill_table(int(remaining.max()), sorted({int(t) for t in ticks if t > 0}))
    bad = [p for p, r in zip(plans, remaining, strict=True) if not fill[r]]
    if bad:
        raise UserError(f"no sequence of the model's note lengths fills {bad[0].length} quarters")
    contexts = [[BOS_ID] * sequence_length + list(p.primer_ids) for p in plans]
    starts = [len(c) for c in contexts]
    elapsed = [Fraction(0)] * len(plans)
    while (remaining > 0).any():
        rows = np.flatnonzero(remaining > 0)
        windows = np.array([contexts[r][-sequence_length:] for r in rows], dtype=np.int32)
        logits = np.asarray(step(windows), dtype=np.float64)
        left = remaining[rows, None]
        allowed = (ticks > 0) & (ticks <= left) & fill[np.clip(left - ticks, 0, None)]
        width = max(len(plans[int(r)].constraints) for r in rows)
        members = np.zeros((len(rows), width, len(vocab)), dtype=bool)
        shares = np.zeros((len(rows), width))
        for j, r in enumerate(rows):
            plan = plans[int(r)]
            at = (plan.position + elapsed[r]) % plan.bar
            for c, constraint in enumerate(plan.constraints):
                members[j, c], shares[j, c] = constraint.at(at)
            if options.no_repeat_ngram:
                banned = repeated_figures(
                    contexts[r][starts[r] - len(plan.primer_ids) :],
                    options.no_repeat_ngram,
                    len(vocab),
                )
                if (allowed[j] & ~banned).any():
                    allowed[j] &= ~banned
        picked = choose(np.where(allowed, logits, -np.inf), options, rng, members, shares)
        for j, r in enumerate(rows):
            choice = int(picked[j])
            contexts[r].append(choice)
            remaining[r] -= ticks[choice]
            elapsed[r] += durations[choice]
    return [[vocab.event(i) for i in c[s:]] for c, s in zip(contexts, starts, strict=True)]
