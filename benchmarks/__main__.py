"""`make bench`: run the benchmarks (all, or those named) and print their tables.

    python -m benchmarks [pipeline] [features] [parity] [accuracy] [search] [curves]
        [pruning] [scale] [step] [generalisation] [gpu] [melody] [dream] [large]
        [pipeline_large] [ui] [setup]

accuracy and generalisation need a finished default study (`make sweep`); the others need
the default corpus (`make data`); pruning replays the learning curves that curves records
(or, without them, search's), so run curves first; gpu measures the accelerator Keras sees
(a dry run without one); melody needs a finished melody study (`make sweep
EXPERIMENT=experiments/melody.yaml`); dream needs the default study's champion and
logs one dream run into ./mlruns; large, pipeline_large and setup run only when named (large
renders its own 50k+ note corpus under NSYNTH_LARGE_DIR: hours on 2 cores, ~40 GB;
pipeline_large writes an 11 GB rows file under the data root for a few minutes; setup clones
HEAD and times the README's two commands there). Results are written under benchmarks/results/.
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Imported only when run, so one benchmark's import cannot stop the others.
BENCHES = (
    "pipeline",
    "features",
    "parity",
    "accuracy",
    "search",
    "curves",
    "pruning",
    "scale",
    "step",
    "generalisation",
    "gpu",
    "melody",
    "dream",
    "large",
    "pipeline_large",
    "setup",
    "ui",
)


#: Run only when named: hours, or many gigabytes of disk (see the docstring).
ON_REQUEST = ("large", "pipeline_large", "setup")


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for name in names or [n for n in BENCHES if n not in ON_REQUEST]:
        print(f"\n== {name} ==", flush=True)
        importlib.import_module(f"benchmarks.bench_{name}").run()
    return 0


raise SystemExit(main(sys.argv[1:]))
