"""4. Pruning efficiency, by replaying recorded learning curves through each pruner.

Training every candidate pruner x 3 seeds would cost hours on 2 cores, and would confound the
pruner with the sampler (TPE proposes differently once trials are pruned). Pruners only ever
see the per-epoch validation accuracies a trial reports, so this benchmark replays real curves
instead: those the `curves` benchmark records (random trials of the default search space, no
pruning, no early stopping, every trial its full epoch cap), or, without them, those of the
`search` benchmark's "Optuna random" contender (its trace splits into trials of exactly the
epoch cap, the last one possibly cut by the budget; only 2-4 trials a seed). Each seed's
trials are replayed in their order through every pruner; a pruned trial stops consuming
epochs. The default study also stops a trial early after `PATIENCE` epochs without a gain,
pruned or not, so every pruner is replayed twice: on the whole curves, and with that early
stopping (whose "none" row is what the study spends without a pruner). Reported per pruner:
epochs trained over all seeds as a ratio to no pruning, and whether each seed's best
validation accuracy is still found. Run `curves` (or `search`) first.
"""

from __future__ import annotations

import json
import statistics

import optuna

from benchmarks.common import RESULTS, markdown, save, table
from nsynth_research.core.storage import make_pruner
from nsynth_research.core.study_config import StudyConfig

SOURCE = "Optuna random"
#: The default study's `training.early_stopping_patience` (experiments/default.yaml).
PATIENCE = 3
PRUNERS = {
    "none": {"name": "none"},
    "median, 3 startup, 2 warm-up": {"name": "median"},
    "median, 1 warm-up": {"name": "median", "n_warmup_steps": 1},
    "median, 2 startup, 1 warm-up": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
    "percentile 75 (keep top 75%), 2 startup, 1 warm-up": {
        "name": "percentile",
        "n_startup_trials": 2,
        "n_warmup_steps": 1,
    },
    "percentile 33 (keep top 33%), 2 startup, 1 warm-up": {
        "name": "percentile",
        "percentile": 33.0,
        "n_startup_trials": 2,
        "n_warmup_steps": 1,
    },
    "percentile 25 (keep top 25%), 2 startup, 1 warm-up": {
        "name": "percentile",
        "percentile": 25.0,
        "n_startup_trials": 2,
        "n_warmup_steps": 1,
    },
    "patience 1 (median)": {"name": "patience", "n_warmup_steps": 1},
    "successive halving, min 1, x3": {"name": "successive_halving", "min_resource": 1},
    "successive halving, min 2, x3": {"name": "successive_halving", "min_resource": 2},
    "successive halving, min 1, x2": {
        "name": "successive_halving",
        "min_resource": 1,
        "reduction_factor": 2,
    },
    "successive halving, min 2, x2": {
        "name": "successive_halving",
        "min_resource": 2,
        "reduction_factor": 2,
    },
    "hyperband, min 1, x3": {"name": "hyperband", "min_resource": 1},
    "hyperband, min 2, x3": {"name": "hyperband", "min_resource": 2},
    "wilcoxon p<0.1": {"name": "wilcoxon", "n_warmup_steps": 1},
}


def early_stopped(curve: list[float], patience: int | None) -> list[float]:
    """The part of `curve` Keras' EarlyStopping (min_delta 0, mode max) lets train."""
    if patience is None:
        return curve
    best, wait = float("-inf"), 0
    for i, value in enumerate(curve):
        best, wait = (value, 0) if value > best else (best, wait + 1)
        if wait >= patience:
            return curve[: i + 1]
    return curve


def replay(
    curves: list[list[float]], pruner: dict, seed: int, patience: int | None = None
) -> tuple[int, float]:
    """(epochs trained, best validation accuracy seen) with this pruner on these curves,
    each first cut where early stopping with `patience` would stop it (None: never)."""
    cfg = StudyConfig(
        name="replay", search_space={"x": {"type": "float", "low": 0, "high": 1}}, pruner=pruner
    )
    study = optuna.create_study(
        # Hyperband assigns trials to brackets by hashing the study name: a fixed one makes
        # the replay repeatable (Optuna's default name is a fresh UUID).
        study_name=f"replay-{seed}",
        direction="maximize",
        pruner=make_pruner(cfg),
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    epochs, best = 0, 0.0
    for whole in curves:
        curve = early_stopped(whole, patience)
        trial = study.ask()
        seen: list[float] = []
        for step, value in enumerate(curve, start=1):  # epoch N at step N, as trials report
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


def load_curves() -> tuple[str, int, list[list[list[float]]]]:
    """(where from, epoch cap, per seed the trials' curves): `curves`' recording if any."""
    if (RESULTS / "curves.json").is_file():
        rec = json.loads((RESULTS / "curves.json").read_text())
        return "curves.json (random trials, whole curves)", rec["epochs"], rec["curves"]
    search = json.loads((RESULTS / "search.json").read_text())
    cap = search["max_epochs_per_trial"]
    per_seed = [
        [[acc for _, acc in trace[i : i + cap]] for i in range(0, len(trace), cap)]
        for trace in search["traces"][SOURCE]
    ]
    return f"search.json traces of {SOURCE!r}", cap, per_seed


def compare(per_seed: list[list[list[float]]], patience: int | None) -> dict:
    """Every pruner replayed on every seed's curves; prints the table, returns the runs."""
    out = {}
    for label, pruner in PRUNERS.items():
        runs = [replay(curves, pruner, seed, patience) for seed, curves in enumerate(per_seed)]
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
    return {"runs": out, "choice": choice, "table": (headers, rows)}


def run() -> dict:
    source, cap, per_seed = load_curves()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{source}: {[len(c) for c in per_seed]} trials per seed, cap {cap} epochs")
    print("whole curves (no early stopping):")
    whole = compare(per_seed, None)
    print(f"with the default study's early stopping (patience {PATIENCE}):")
    stopped = compare(per_seed, PATIENCE)
    tables = {"whole_curves": whole.pop("table"), "early_stopping": stopped.pop("table")}
    save(
        "pruning",
        {
            "source": source,
            "epoch_cap": cap,
            "trials_per_seed": [len(c) for c in per_seed],
            "pruners": PRUNERS,
            "whole_curves": whole,
            f"early_stopping_patience_{PATIENCE}": stopped,
        },
        tables=tables,
    )
    return {"choice": whole["choice"], "choice_with_early_stopping": stopped["choice"]}
