"""Sets of melodies side by side: one table of statistics and one figure of distributions,
each generated set beside held-out real tunes and the spread real tunes show at the same size.

The table's last columns name every statistic of a set that falls outside the central 95% range
of sets of as many real excerpts (for a distance: above it): what "unlike real tunes" means at
this sample size. With ten statistics a real set itself falls outside now and then, so the
table also gives how many flags real sets get: a generated set with more is unlike them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nsynth_research.melody.stats import (
    HISTOGRAMS,
    MAX_INTERVAL,
    Melody,
    Spread,
    length_labels,
    pooled,
    real_draws,
    reference_histograms,
    set_stats,
)

#: Column order of the table: statistic key -> header.
COLUMNS = {
    "tv_degree": "TV scale degree",
    "tv_interval": "TV interval",
    "tv_length": "TV note length",
    "out_of_key": "out-of-key notes",
    "across_barline": "notes across barline",
    "repeated_bars": "repeated bars",
    "longest_run": "longest same-pitch run",
    "pitch_range": "pitch range (semitones)",
    "pitch_class_entropy": "pitch-class entropy (bits)",
    "mean_abs_interval": "mean step size (semitones)",
}
#: Statistics shown as percentages.
PERCENT = ("out_of_key", "across_barline", "repeated_bars")


def flagged(stats: Mapping[str, float], spread: Mapping[str, Spread]) -> list[str]:
    """Statistics outside real sets' central 95% range (for a distance: above it)."""
    out = []
    for k in COLUMNS:
        value, s = stats[k], spread[k]
        if np.isfinite(value) and (value > s.high if k.startswith("tv_") else not s.inside(value)):
            out.append(COLUMNS[k])
    return out


@dataclass(frozen=True)
class RealSets:
    """Real sets of one size: each statistic's spread, and how many flags they get."""

    spread: dict[str, Spread]
    flags: Spread


def real_sets(real: Sequence[Melody], n: int, seed: int) -> RealSets:
    draws = real_draws(real, n, seed=seed)
    spread = {k: Spread.of([d[k] for d in draws]) for k in draws[0]}
    return RealSets(spread, Spread.of([len(flagged(d, spread)) for d in draws]))


@dataclass(frozen=True)
class Comparison:
    """Statistics of named sets against `real`, and real sets of each of their sizes."""

    stats: dict[str, dict[str, float]]
    sizes: dict[str, int]
    real: dict[int, RealSets]
    n_real: int

    def outside(self, name: str) -> list[str]:
        return flagged(self.stats[name], self.real[self.sizes[name]].spread)

    def as_json(self) -> dict[str, Any]:
        return {
            "sets": self.stats,
            "sizes": self.sizes,
            "real_sets": {
                n: {"spread": {k: vars(s) for k, s in r.spread.items()}, "flags": vars(r.flags)}
                for n, r in self.real.items()
            },
            "n_real": self.n_real,
        }


def compare_sets(
    sets: Mapping[str, Sequence[Melody]], real: Sequence[Melody], *, seed: int = 0
) -> Comparison:
    """Each set against `real`; flags against real sets of the same size."""
    reference = reference_histograms(real)
    sizes = {name: len(ms) for name, ms in sets.items()}
    return Comparison(
        stats={name: set_stats(ms, reference) for name, ms in sets.items()},
        sizes=sizes,
        real={n: real_sets(real, n, seed) for n in sorted(set(sizes.values()), reverse=True)},
        n_real=len(real),
    )


def cell(key: str, value: float) -> float:
    """A table cell: percentages for shares, three decimals otherwise."""
    return round(100 * value, 1) if key in PERCENT else round(value, 3)


def header(key: str) -> str:
    return f"{COLUMNS[key]} (%)" if key in PERCENT else COLUMNS[key]


def table(comparison: Comparison) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows: each set, then real sets of each size (median, 2.5%, 97.5%)."""
    headers = [
        "melodies",
        "n",
        *(header(k) for k in COLUMNS),
        "flags",
        "outside real 95%",
    ]
    rows: list[list[Any]] = []
    for name, stats in comparison.stats.items():
        outside = comparison.outside(name)
        row = [name, comparison.sizes[name], *(cell(k, stats[k]) for k in COLUMNS)]
        rows.append([*row, len(outside), ", ".join(outside) or "none"])
    for n, found in comparison.real.items():
        real = f"held-out real, sets of {n} of {comparison.n_real}"
        for label, pick in (("median", "median"), ("2.5%", "low"), ("97.5%", "high")):
            values = (cell(k, getattr(found.spread[k], pick)) for k in COLUMNS)
            rows.append([f"{real}: {label}", n, *values, getattr(found.flags, pick), ""])
    return headers, rows


def distributions_figure(
    sets: Mapping[str, Sequence[Melody]], real: Sequence[Melody], caption: str
) -> plt.Figure:
    """Scale-degree, interval and note-length distributions of each set (lines) over the
    held-out real tunes' (grey bars)."""
    labels = {
        "degree": [str(i) for i in range(12)],
        "interval": [str(i) for i in range(-MAX_INTERVAL, MAX_INTERVAL + 1)],
        "length": length_labels(),
    }
    titles = {
        "degree": "scale degree (semitones above the tonic)",
        "interval": "melodic interval (semitones, clipped at +-12)",
        "length": "note length (quarters)",
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [12, 25, 10]})
    for ax, kind in zip(axes, HISTOGRAMS, strict=True):
        x = np.arange(len(labels[kind]))
        ref = pooled(real, kind)
        ax.bar(x, ref / ref.sum(), color="0.8", label=f"held-out real ({len(real)})")
        for name, melodies in sets.items():
            h = pooled(melodies, kind)
            if h.sum():
                ax.plot(x, h / h.sum(), marker="o", ms=3, lw=1.2, label=f"{name} ({len(melodies)})")
        ax.set_xticks(x, labels[kind], fontsize=7, rotation=90 if kind == "interval" else 0)
        ax.set_title(titles[kind], fontsize=9)
        ax.set_ylabel("share of notes", fontsize=8)
    axes[-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(caption, fontsize=9)
    fig.tight_layout()
    return fig
