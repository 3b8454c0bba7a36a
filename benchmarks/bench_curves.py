"""curves: learning curves of random trials, recorded for the pruning replay (`pruning`).

A pruner only ever sees the per-epoch validation accuracies a trial reports, so `pruning`
replays recorded curves through each pruner. `search` records too few whole curves for that
(2-4 trials per seed inside its wall budget), so this records many cheap ones: per seed,
`TRIALS` configs drawn at random from the default study's search space (Optuna's
RandomSampler, no pruning, no early stopping) each trained `EPOCHS` epochs (the default
study's epoch cap) through the project's own `train` on a small family-spread subset of the
default corpus's train and valid splits (never test). The monitored value is in-library
`val_accuracy`: the bench corpus has no library fold to score transfer on.

Sizing (~10-15 min on 2 cores): 3 seeds x TRIALS x EPOCHS epochs of TRAIN_NOTES notes, plus
each front-end's features for the subset once.
"""

from __future__ import annotations

import time

import keras
import optuna

from benchmarks.common import EXPERIMENT, save, small_study
from nsynth_research.core.space import base_config, suggest, trial_config
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.training import prepare_data, train

SEEDS = (0, 1, 2)
TRIALS, EPOCHS, NOTES = 14, 8, 192


class Curve(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.values.append(float((logs or {})["val_accuracy"]))


def run() -> dict:
    study_cfg = small_study(NOTES, EPOCHS)
    base = base_config(study_cfg, InstrumentConfig)
    data = prepare_data(base, progress=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves: list[list[list[float]]] = []
    params: list[list[dict]] = []
    start = time.perf_counter()
    for seed in SEEDS:
        sampler = optuna.samplers.RandomSampler(seed=seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        curves.append([])
        params.append([])
        for _ in range(TRIALS):
            trial = study.ask()
            chosen = suggest(trial, study_cfg.search_space)
            cfg = trial_config(base, study_cfg.search_space, chosen)
            curve = Curve()
            train(cfg, data, callbacks=[curve], verbose=0)
            study.tell(trial, max(curve.values))
            curves[-1].append(curve.values)
            params[-1].append(chosen)
            print(
                f"  seed {seed} trial {len(curves[-1])}: best {max(curve.values):.3f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    save(
        "curves",
        {
            "experiment": str(EXPERIMENT),
            "seeds": list(SEEDS),
            "trials_per_seed": TRIALS,
            "epochs": EPOCHS,
            "notes_per_split": NOTES,
            "monitor": "val_accuracy",
            "seconds": time.perf_counter() - start,
            "params": params,
            "curves": curves,
        },
    )
    return {"trials": TRIALS * len(SEEDS)}
