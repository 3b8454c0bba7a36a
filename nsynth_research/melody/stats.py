"""Simple statistics that say whether generated melodies look like the corpus's: pitch-class
histogram, melodic-interval histogram, note-length distribution and the fraction of bars
that repeat an earlier bar of the same melody. Each is compared with the test tunes' by
total-variation distance (half the L1 distance of two distributions: 0 same, 1 disjoint).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from nsynth_research.melody.tokens import REST, Event

MAX_INTERVAL = 12


def pitch_classes(melodies: Sequence[Sequence[Event]]) -> np.ndarray:
    counts = np.zeros(12)
    for m in melodies:
        for e in m:
            if e.pitch != REST:
                counts[e.pitch % 12] += 1
    return counts


def intervals(melodies: Sequence[Sequence[Event]]) -> np.ndarray:
    """Semitone steps between consecutive notes (rests skipped), clipped to +-12."""
    counts = np.zeros(2 * MAX_INTERVAL + 1)
    for m in melodies:
        notes = [e.pitch for e in m if e.pitch != REST]
        for a, b in itertools.pairwise(notes):
            counts[int(np.clip(b - a, -MAX_INTERVAL, MAX_INTERVAL)) + MAX_INTERVAL] += 1
    return counts


def note_lengths(melodies: Sequence[Sequence[Event]]) -> Counter[Fraction]:
    return Counter(e.duration for m in melodies for e in m if e.pitch != REST)


def bars_of(
    melody: Sequence[Event], bar: Fraction
) -> list[tuple[tuple[int, Fraction, Fraction], ...]]:
    """Each bar as (pitch, offset in bar, duration) of the events starting in it."""
    bars: dict[int, list[tuple[int, Fraction, Fraction]]] = {}
    t = Fraction(0)
    for e in melody:
        index = int(t // bar)
        bars.setdefault(index, []).append((e.pitch, t - index * bar, e.duration))
        t += e.duration
    return [tuple(bars.get(i, [])) for i in range(int(t // bar) + (t % bar > 0))]


def repeated_bar_fraction(melodies: Sequence[Sequence[Event]], bars: Sequence[Fraction]) -> float:
    """Share of bars (after each melody's first) equal to an earlier bar of the same melody."""
    repeats = total = 0
    for m, bar in zip(melodies, bars, strict=True):
        seen: set = set()
        for i, b in enumerate(bars_of(m, bar)):
            if i:
                total += 1
                repeats += b in seen
            seen.add(b)
    return repeats / total if total else 0.0


def tv_distance(a: np.ndarray, b: np.ndarray) -> float:
    if a.sum() == 0 or b.sum() == 0:
        return 1.0
    return 0.5 * float(np.abs(a / a.sum() - b / b.sum()).sum())


def compare(
    generated: Sequence[Sequence[Event]],
    generated_bars: Sequence[Fraction],
    reference: Sequence[Sequence[Event]],
    reference_bars: Sequence[Fraction],
) -> dict[str, float]:
    """Distances (and the repeated-bar fractions) of generated vs reference melodies."""
    gl, rl = note_lengths(generated), note_lengths(reference)
    keys = sorted(set(gl) | set(rl))
    g_rep = repeated_bar_fraction(generated, generated_bars)
    r_rep = repeated_bar_fraction(reference, reference_bars)
    return {
        "tv_pitch_class": tv_distance(pitch_classes(generated), pitch_classes(reference)),
        "tv_interval": tv_distance(intervals(generated), intervals(reference)),
        "tv_note_length": tv_distance(
            np.array([gl[k] for k in keys], float), np.array([rl[k] for k in keys], float)
        ),
        "repeated_bars_generated": g_rep,
        "repeated_bars_reference": r_rep,
        "repeated_bars_abs_diff": abs(g_rep - r_rep),
    }
