"""Shared benchmark plumbing: interleaved, repeated timings with their spread, tables, JSON.

A 2-core machine shared with other work drifts by tens of percent within a minute, so a
contender timed in one block and its reference in another can swap places between runs. Hence
`interleaved`: every contender is warmed up outside the timed part, then the contenders run in
rounds (A B C, B C A, ...), at least five, and each is reported as the median with its
min-max range; `Measured.overlaps` flags a contender whose range meets the reference's, i.e.
a difference this run cannot tell from noise.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsynth_research.core.study_config import StudyConfig, load_study_config
from nsynth_research.doctables import cell, markdown  # noqa: F401 (the benches print it)

RESULTS = Path(__file__).resolve().parent / "results"
DATA_ROOT = Path(os.environ.get("NSYNTH_BENCH_DATA", "data/nsynth-gm"))
EXPERIMENT = Path("experiments/default.yaml")


def small_study(notes: int, epochs: int, *extra: str) -> StudyConfig:
    """The default study cut down for a benchmark that trains many whole curves: `notes` a
    split, every library trained and scored in-library (the bench subset has no library
    fold), `epochs` each on the whole training data (no multi-fidelity start, no early
    stopping: whole curves); `extra` study overrides on top."""
    return load_study_config(
        EXPERIMENT,
        [
            f"overrides.data.root={DATA_ROOT}",
            f"overrides.data.max_notes_per_split={notes}",
            "overrides.data.train_libraries=[]",
            f"overrides.training.epochs={epochs}",
            "overrides.training.early_stopping_patience=null",
            "overrides.training.subset_epochs=0",
            *extra,
        ],
    )


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of `repeats` calls (after the caller's own warm-up)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


MIN_REPEATS = 5


@dataclass(frozen=True)
class Measured:
    """Repeated measurements of one contender as rates (work per second): median and range."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def overlaps(self, other: Measured) -> bool:
        """True when the two ranges meet: the difference is within this run's noise."""
        return self.low <= other.high and other.low <= self.high

    def spread(self) -> str:
        return f"{self.low:.4g}-{self.high:.4g}"

    def as_json(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "low": self.low,
            "high": self.high,
            "samples": list(self.samples),
        }


def interleaved(
    contenders: dict[str, Callable[[], Any]],
    work: float,
    *,
    repeats: int = MIN_REPEATS,
    warmup: int = 1,
    self_timed: bool = False,
) -> dict[str, Measured]:
    """Rates (`work` / seconds) of each contender over `repeats` interleaved rounds.

    Every contender first runs `warmup` times untimed (tracing, XLA compilation, page cache).
    Round r starts at contender r mod n, so none always follows the same neighbour (whose
    leftover threads or cache state would otherwise bias it the same way every round).
    With `self_timed`, each call returns the seconds of its own timed part (e.g. a child
    process that must leave its start-up and warm-up out), used instead of the wall time.
    """
    if repeats < MIN_REPEATS:
        raise ValueError(f"at least {MIN_REPEATS} repeats make a median and a spread")
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    names = list(contenders)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            got = contenders[name]()
            seconds[name].append(float(got) if self_timed else time.perf_counter() - start)
    return {n: Measured(tuple(work / s for s in seconds[n])) for n in names}


def ratio_rows(
    results: dict[str, Measured], reference: str, unit: str = "per s"
) -> tuple[list[str], list[list[Any]]]:
    """Table headers and rows: median, range, ratio of medians to the reference, and a flag
    where the contender's range overlaps the reference's (`~`: not distinguishable here)."""
    ref = results[reference]
    rows = []
    for name, m in results.items():
        flag = "ref" if name == reference else ("~ overlaps" if m.overlaps(ref) else "")
        rows.append([name, m.median, m.spread(), m.median / ref.median, flag])
    return ["contender", f"median {unit}", "range", f"x {reference[:24]}", "vs ref"], rows


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """The printed form; `markdown` (from the docs generator) is the one docs/ shows."""
    cells = [[cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


#: One printed table: headers and rows, as `table` and `markdown` take them.
Table = tuple[list[str], list[list[Any]]]


def save(name: str, payload: dict[str, Any], tables: dict[str, Table] | None = None) -> Path:
    """Write `benchmarks/results/<name>.json`. `tables` (id -> headers, rows) are stored as
    printed, so `make docs` renders the docs/ tables from this file, never from typed text."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        **payload,
    }
    if tables:
        payload["tables"] = {
            key: {"headers": list(headers), "rows": [list(r) for r in rows]}
            for key, (headers, rows) in tables.items()
        }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
