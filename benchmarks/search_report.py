"""The search benchmark's verdict: each contender's best validation accuracy at the budget, and
its time to a good model, i.e. to Keras Tuner Hyperband's final best, against Hyperband's own
time to it.

Time to target: the target is the median over seeds of Hyperband's final best (the lower
middle value for an even seed count, so at least half of Hyperband's seeds reach it); a
contender's time to it is the median over seeds of the first epoch end at or above it, a seed
that never gets there counting as never (so the median is "never" unless most seeds get
there). "x HB time" divides that by Hyperband's own median time to the same target; its
interval resamples the seeds of both contenders (and so the target), the unit that varies.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

from benchmarks.common import markdown, save, table

REFERENCE = "KT Hyperband"
RESAMPLES = 2000
#: One epoch's end: (seconds since the run started, val_accuracy, trial number).
Trace = list[tuple[float, float, int]]


def best_of(trace: Trace) -> float:
    return max((acc for _, acc, _ in trace), default=0.0)


def first_time(trace: Trace, target: float) -> float:
    return next((t for t, acc, _ in trace if acc >= target), math.inf)


def target_of(reference: list[Trace]) -> float:
    return statistics.median_low(best_of(tr) for tr in reference)


def time_to(traces: list[Trace], target: float) -> float:
    return statistics.median(first_time(tr, target) for tr in traces)


def ratio(traces: list[Trace], reference: list[Trace]) -> float:
    """Median time to the reference's target over the reference's own median time to it."""
    target = target_of(reference)
    return time_to(traces, target) / time_to(reference, target)


def ratio_interval(traces: list[Trace], reference: list[Trace], seed: int = 0) -> list[float]:
    """90% interval of `ratio` over resampled seeds (each contender's independently)."""
    rng = np.random.default_rng(seed)
    got = []
    for _ in range(RESAMPLES):
        mine = [traces[i] for i in rng.integers(0, len(traces), len(traces))]
        ref = [reference[i] for i in rng.integers(0, len(reference), len(reference))]
        got.append(ratio(mine, ref))
    got = [math.inf if math.isnan(r) else r for r in got]  # never / never
    return [float(np.percentile(got, q, method="nearest")) for q in (5, 95)]


def finite(value: float) -> float | None:
    """JSON has no infinity: never is null."""
    return None if math.isinf(value) else value


def seconds(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f} s"


def report(name: str, traces: dict[str, list[Trace]], meta: dict[str, Any]) -> dict[str, Any]:
    best = {c: [best_of(tr) for tr in trs] for c, trs in traces.items()}
    mean = {c: statistics.mean(b) for c, b in best.items()}
    ref = traces.get(REFERENCE)
    target = target_of(ref) if ref else None
    rows, goal = [], {}
    for c, trs in traces.items():
        row: list[Any] = [c, mean[c], statistics.pstdev(best[c]), min(best[c]), max(best[c])]
        row += [mean[c] / mean[REFERENCE] if ref else "-"]
        row += [
            statistics.mean(map(len, trs)),
            statistics.mean(len({e[2] for e in tr}) for tr in trs),
        ]
        if ref and target is not None:
            times = [first_time(tr, target) for tr in trs]
            low, high = ratio_interval(trs, ref)
            x_time = ratio(trs, ref)
            goal[c] = {
                "per_seed_seconds": [finite(t) for t in times],
                "median_seconds": finite(time_to(trs, target)),
                "x_reference_time": finite(x_time),
                "interval_90": [finite(low), finite(high)],
            }
            reached = sum(not math.isinf(t) for t in times)
            row += [seconds(time_to(trs, target)), f"{reached}/{len(trs)}"]
            row += [x_time if math.isfinite(x_time) else "never"]
            shown = f"{low:.2f}-{high:.2f}".replace("inf", "never")
            row += ["(reference)" if c == REFERENCE else shown]
        rows.append(row)
    headers = ["contender", "best val acc (mean)", "sd", "min", "max", f"x {REFERENCE}"]
    headers += ["epochs", "trials"]
    if ref:
        headers += [f"time to {REFERENCE} best", "reached", "x HB time", "90% interval"]
    print(table(headers, rows))
    print(markdown(headers, rows))
    save(
        name,
        {
            **meta,
            "reference": REFERENCE,
            "target_val_accuracy": target,
            "best_val_accuracy": best,
            "time_to_target": goal,
            # [seconds, val_accuracy] per epoch (the form bench_pruning replays), and apart,
            # the trial each epoch belongs to.
            "traces": {c: [[[t, a] for t, a, _ in tr] for tr in trs] for c, trs in traces.items()},
            "trace_trials": {c: [[k for *_, k in tr] for tr in trs] for c, trs in traces.items()},
        },
        tables={"head_to_head": (headers, rows)},
    )
    return {"best": mean, "time_to_target": goal}
