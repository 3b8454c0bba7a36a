"""4. Pruning efficiency: the same study with and without its pruner, same sampler seed;
epochs trained, wall time and best validation accuracy. Both copies run in a scratch store
so the real study is untouched."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import save, table
from nsynth_research.core.study import run_sweep
from nsynth_research.core.study_config import load_study_config
from nsynth_research.instruments.task import InstrumentTask

TRIALS, NOTES = 8, 600


def run(experiment: Path = Path("experiments/default.yaml")) -> dict:
    rows, out = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, pruner in (("median pruner", "median"), ("no pruner", "none")):
            overrides = [
                f"name=bench-{pruner}",
                f"n_trials={TRIALS}",
                "timeout_minutes=null",
                f"pruner.name={pruner}",
                f"overrides.tracking.store={tmp}/mlruns",
                f"overrides.data.max_notes_per_split={NOTES}",
            ]
            study = load_study_config(experiment, overrides)
            start = time.perf_counter()
            outcome = run_sweep(InstrumentTask(), study, experiment, overrides=overrides)
            seconds = time.perf_counter() - start
            trials = outcome.study.trials
            epochs = sum(len(t.intermediate_values) for t in trials)
            pruned = sum(t.state.name == "PRUNED" for t in trials)
            out[label] = {
                "seconds": seconds,
                "epochs": epochs,
                "pruned": pruned,
                "best_val_accuracy": outcome.study.best_value,
            }
    ref = out["no pruner"]
    for label, r in out.items():
        rows.append(
            [
                label,
                r["epochs"],
                r["epochs"] / ref["epochs"],
                r["seconds"],
                r["seconds"] / ref["seconds"],
                r["pruned"],
                r["best_val_accuracy"],
            ]
        )
    print(
        table(
            ["study", "epochs", "x no-pruner", "wall s", "x no-pruner", "pruned", "best val acc"],
            rows,
        )
    )
    save("pruning", {"trials": TRIALS, "notes_per_split": NOTES, "runs": out})
    return {"time_ratio": out["median pruner"]["seconds"] / ref["seconds"]}
