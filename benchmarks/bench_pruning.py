"""4. Pruning efficiency, by replaying recorded learning curves through each pruner.

Training every candidate pruner x 3 seeds would cost hours on 2 cores, and would confound the
pruner with the sampler (TPE proposes differently once trials are pruned). Pruners only ever
see the per-epoch validation accuracies a trial reports, so this benchmark replays real curves
instead: those of the `search` benchmark's "Optuna random" contender (no pruning, no early
stopping, so every trial trained its full epoch cap; its trace splits into trials of exactly
that many epochs, the last one possibly cut by the budget). Each seed's trials are replayed in
their order through every pruner; a pruned trial stops consuming epochs. Reported per pruner:
epochs trained over all seeds as a ratio to no pruning, and whether each seed's best
validation accuracy is still found. Run `search` first.
"""

from __future__ import annotations

import json
import statistics

import optuna

from benchmarks.common import RESULTS, markdown, save, table
from nsynth_research.core.storage import make_pruner
from nsynth_research.core.study_config import StudyConfig

SOURCE = "Optuna random"
PRUNERS = {
    "none": {"name": "none"},
    "median (old default: 3 startup, 2 warm-up)": {"name": "median"},
    "median, 1 warm-up": {"name": "median", "n_warmup_steps": 1},
    "median, 2 startup, 1 warm-up": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
    "percentile 75, 2 startup, 1 warm-up": {
        "name": "percentile",
        "n_startup_trials": 2,
        "n_warmup_steps": 1,
    },
    "patience 1 (median)": {"name": "patience", "n_warmup_steps": 1},
    "successive halving, min 1, x3": {"name": "successive_halving", "min_resource": 1},
    "successive halving, min 2, x3": {"name": "successive_halving", "min_resource": 2},
    "hyperband, min 1, x3": {"name": "hyperband", "min_resource": 1},
    "wilcoxon p<0.1": {"name": "wilcoxon", "n_warmup_steps": 1},
}


def replay(curves: list[list[float]], pruner: dict, seed: int) -> tuple[int, float]:
    """(epochs trained, best validation accuracy seen) with this pruner on these curves."""
    cfg = StudyConfig(
        name="replay", search_space={"x": {"type": "float", "low": 0, "high": 1}}, pruner=pruner
    )
    study = optuna.create_study(
        direction="maximize",
        pruner=make_pruner(cfg),
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    epochs, best = 0, 0.0
    for curve in curves:
        trial = study.ask()
        seen: list[float] = []
        for step, value in enumerate(curve):
            seen.append(value)
            trial.report(value, step)
            if trial.should_prune():
                break
        epochs += len(seen)
        best = max(best, *seen)
        if len(seen) < len(curve):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, max(seen))
    return epochs, best


def run() -> dict:
    search = json.loads((RESULTS / "search.json").read_text())
    cap = search["max_epochs_per_trial"]
    per_seed = [
        [[acc for _, acc in trace[i : i + cap]] for i in range(0, len(trace), cap)]
        for trace in search["traces"][SOURCE]
    ]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {}
    for label, pruner in PRUNERS.items():
        runs = [replay(curves, pruner, seed) for seed, curves in enumerate(per_seed)]
        out[label] = {"epochs": [e for e, _ in runs], "best": [b for _, b in runs]}
    ref = out["none"]
    rows = []
    for label, r in out.items():
        equal = sum(b >= rb for b, rb in zip(r["best"], ref["best"], strict=True))
        r["epochs_vs_none"] = sum(r["epochs"]) / sum(ref["epochs"])
        r["seeds_with_equal_best"] = equal
        rows.append(
            [
                label,
                sum(r["epochs"]),
                r["epochs_vs_none"],
                1 - r["epochs_vs_none"],
                statistics.mean(r["best"]),
                f"{equal}/{len(per_seed)}",
            ]
        )
    headers = ["pruner", "epochs", "x none", "saved", "best val acc (mean)", "equal best"]
    print(table(headers, rows))
    print(markdown(headers, rows))
    eligible = [k for k, r in out.items() if r["seeds_with_equal_best"] == len(per_seed)]
    choice = min(eligible, key=lambda k: out[k]["epochs_vs_none"])
    print(
        f"fewest epochs with every seed's best kept: {choice} "
        f"({1 - out[choice]['epochs_vs_none']:.0%} saved; target >= 40%)"
    )
    save(
        "pruning",
        {
            "source": f"search.json traces of {SOURCE!r}",
            "epoch_cap": cap,
            "trials_per_seed": [len(c) for c in per_seed],
            "pruners": PRUNERS,
            "runs": out,
            "choice": choice,
        },
    )
    return {"choice": choice}
