"""Musical statistics of melodies, one by one and as sets, and how far a set is from real tunes.

Per melody: notes, pitch range, mean melodic step, pitch-class entropy, out-of-key notes
(outside the key signature's seven pitch classes), notes across a barline (tied over it in
notation; anacrusis respected), repeated bars (bars equal to an earlier bar of the same
melody) and the longest run of one repeated pitch. Per set: pooled histograms of scale degree
(semitones above the melody's tonic, so tunes in different keys compare), melodic interval and
note length, and the total-variation distance (half the L1 distance: 0 same, 1 disjoint) of
each to a reference set's.

A distance means nothing without the distance real tunes have from each other at the same
sample size: eight 8-bar excerpts never match a pooled corpus exactly. `real_draws` draws many
sets of n real excerpts (whole tunes resampled), each statistic's median and central 95% range
over them is its `Spread`; a generated set inside that range is as close to real tunes as real
tunes are.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nsynth_research.melody.metre import Key, crosses_barline
from nsynth_research.melody.tokens import REST, Event

MAX_INTERVAL = 12
#: Note lengths (quarters) drawn and compared one by one; all others pool into "other".
LENGTHS = tuple(Fraction(x) for x in ("1/4", "1/3", "1/2", "3/4", "1", "3/2", "2", "3", "4"))
HISTOGRAMS = ("degree", "interval", "length")
SCALARS = (
    "notes",
    "pitch_range",
    "mean_abs_interval",
    "pitch_class_entropy",
    "out_of_key",
    "across_barline",
    "repeated_bars",
    "longest_run",
)


@dataclass(frozen=True)
class Melody:
    """Events plus what their statistics depend on: key, bar length, and the offset of the
    first event within its bar."""

    events: tuple[Event, ...]
    key: Key
    bar: Fraction
    offset: Fraction = Fraction(0)

    @property
    def pitches(self) -> list[int]:
        return [e.pitch for e in self.events if e.pitch != REST]

    def placed(self) -> list[tuple[Event, int, Fraction]]:
        """(event, bar index, offset in bar) of each event."""
        out, t = [], self.offset
        for e in self.events:
            out.append((e, int(t // self.bar), t % self.bar))
            t += e.duration
        return out


def histogram(melody: Melody, kind: str) -> np.ndarray:
    """Counts of one of HISTOGRAMS for one melody."""
    notes = melody.pitches
    if kind == "degree":
        return np.bincount([(p - melody.key.tonic) % 12 for p in notes], minlength=12)
    if kind == "interval":
        steps = [
            int(np.clip(b - a, -MAX_INTERVAL, MAX_INTERVAL)) for a, b in itertools.pairwise(notes)
        ]
        return np.bincount([s + MAX_INTERVAL for s in steps], minlength=2 * MAX_INTERVAL + 1)
    if kind == "length":
        counts = np.zeros(len(LENGTHS) + 1)
        for e in melody.events:
            if e.pitch != REST:
                counts[LENGTHS.index(e.duration) if e.duration in LENGTHS else -1] += 1
        return counts
    raise ValueError(f"unknown histogram {kind!r}")


def repeated_bars(melody: Melody) -> float:
    """Share of bars (after the first) whose events equal an earlier bar's."""
    bars: dict[int, list[tuple[int, Fraction, Fraction]]] = {}
    for e, index, offset in melody.placed():
        bars.setdefault(index, []).append((e.pitch, offset, e.duration))
    seen, repeats = set(), 0
    for i, index in enumerate(sorted(bars)):
        content = tuple(bars[index])
        repeats += i > 0 and content in seen
        seen.add(content)
    return repeats / (len(bars) - 1) if len(bars) > 1 else 0.0


def longest_run(pitches: Sequence[int]) -> int:
    return max((len(list(g)) for _, g in itertools.groupby(pitches)), default=0)


def entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum() if counts.sum() else np.zeros(0)
    return float(-(p * np.log2(p)).sum())


def melody_stats(melody: Melody) -> dict[str, float]:
    """SCALARS of one melody (fractions in [0, 1], nan where a melody has no notes)."""
    notes = melody.pitches
    n = len(notes)
    placed = [(e, o) for e, _, o in melody.placed() if e.pitch != REST]
    steps = [abs(b - a) for a, b in itertools.pairwise(notes)]
    scale = melody.key.scale
    return {
        "notes": float(n),
        "pitch_range": float(max(notes) - min(notes)) if n else math.nan,
        "mean_abs_interval": float(np.mean(steps)) if steps else math.nan,
        "pitch_class_entropy": entropy_bits(np.bincount([p % 12 for p in notes], minlength=12)),
        "out_of_key": sum(p % 12 not in scale for p in notes) / n if n else math.nan,
        "across_barline": (
            sum(crosses_barline(o, e.duration, melody.bar) for e, o in placed) / n
            if n
            else math.nan
        ),
        "repeated_bars": repeated_bars(melody),
        "longest_run": float(longest_run(notes)),
    }


def tv_distance(a: np.ndarray, b: np.ndarray) -> float:
    if a.sum() == 0 or b.sum() == 0:
        return 1.0
    return 0.5 * float(np.abs(a / a.sum() - b / b.sum()).sum())


def pooled(melodies: Sequence[Melody], kind: str) -> np.ndarray:
    return np.sum([histogram(m, kind) for m in melodies], axis=0).astype(float)


#: Statistics that are shares of all notes of a set (pooled by note, not averaged by melody).
NOTE_SHARES = ("out_of_key", "across_barline")


@dataclass(frozen=True)
class Profiles:
    """Per-melody statistics and histograms of many melodies, computed once, so that any set
    drawn from them (a resample, a draw of real excerpts) is summarised by indexing."""

    scalars: np.ndarray
    hists: dict[str, np.ndarray]

    @classmethod
    def of(cls, melodies: Sequence[Melody]) -> Profiles:
        rows = [melody_stats(m) for m in melodies]
        return cls(
            np.array([[r[k] for k in SCALARS] for r in rows], float).reshape(-1, len(SCALARS)),
            {k: np.array([histogram(m, k) for m in melodies], float) for k in HISTOGRAMS},
        )

    def summary(
        self, reference: dict[str, np.ndarray], picked: np.ndarray | None = None
    ) -> dict[str, float]:
        """Mean of each per-melody statistic (note shares pooled over notes) and the TV
        distance of each pooled histogram to `reference`'s, for the melodies `picked`."""
        rows = self.scalars if picked is None else self.scalars[picked]
        notes = rows[:, SCALARS.index("notes")]
        out = {}
        for j, name in enumerate(SCALARS):
            values, ok = rows[:, j], np.isfinite(rows[:, j])
            if name in NOTE_SHARES:
                ok &= notes > 0
                out[name] = (
                    float(np.average(values[ok], weights=notes[ok])) if ok.any() else math.nan
                )
            else:
                out[name] = float(values[ok].mean()) if ok.any() else math.nan
        for kind, h in self.hists.items():
            counts = h.sum(axis=0) if picked is None else h[picked].sum(axis=0)
            out[f"tv_{kind}"] = tv_distance(counts, reference[kind])
        return out


def set_stats(melodies: Sequence[Melody], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """`Profiles.summary` of one set of melodies."""
    return Profiles.of(melodies).summary(reference)


def reference_histograms(melodies: Sequence[Melody]) -> dict[str, np.ndarray]:
    return {kind: pooled(melodies, kind) for kind in HISTOGRAMS}


@dataclass(frozen=True)
class Spread:
    """Median and central 95% range of a statistic over sets of n real excerpts."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(*(float(np.nanquantile(values, q)) for q in (0.5, 0.025, 0.975)))

    def inside(self, value: float) -> bool:
        return self.low <= value <= self.high


def real_draws(
    real: Sequence[Melody], n: int, *, draws: int = 200, seed: int = 0
) -> list[dict[str, float]]:
    """`set_stats` of `draws` sets of n excerpts drawn (with replacement) from `real`, each
    set compared with the excerpts it did not draw."""
    rng = np.random.default_rng(seed)
    profiles = Profiles.of(real)
    rows: list[dict[str, float]] = []
    for _ in range(draws):
        picked = rng.integers(0, len(real), n)
        rest = np.ones(len(real), bool)
        rest[picked] = False
        if not rest.any():
            rest[:] = True
        others = {kind: h[rest].sum(axis=0) for kind, h in profiles.hists.items()}
        rows.append(profiles.summary(others, picked))
    return rows


def length_labels() -> list[str]:
    return [str(x) for x in LENGTHS] + ["other"]
