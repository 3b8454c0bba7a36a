"""`make bench`: run the benchmarks (all, or those named) and print their tables.

    python -m benchmarks [pipeline] [features] [accuracy] [pruning] [scale]

accuracy needs a finished default study (`make sweep`); the others need the default corpus
(`make data`). Results are written under benchmarks/results/.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import (
    bench_accuracy,
    bench_features,
    bench_pipeline,
    bench_pruning,
    bench_scale,
)

BENCHES = {
    "pipeline": bench_pipeline.run,
    "features": bench_features.run,
    "accuracy": bench_accuracy.run,
    "pruning": bench_pruning.run,
    "scale": bench_scale.run,
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for name in names or list(BENCHES):
        print(f"\n== {name} ==", flush=True)
        BENCHES[name]()
    return 0


raise SystemExit(main(sys.argv[1:]))
