"""search: this project's study against what a user would pick instead, head to head.

Contenders, 3 seeds each, on the same data and budget:
- project: TPE (the default study's sampler settings, baseline enqueued) + its pruner;
- Keras Tuner Hyperband (max_epochs = the epoch cap, factor 3);
- Keras Tuner RandomSearch;
- Optuna random sampling without pruning.

Same search space: the default study's (`experiments/default.yaml`), expressed to Keras Tuner
as `Choice`s over the same labels and a stepped `Float` for dropout; every contender builds its
models with the project's `build_model`, so the tools differ only in which configs they try
and how long they train them. Same data: one subset of the default corpus's train and valid
splits (never test), normalised features held in memory, fed to `model.fit` alike. Same
budget: wall seconds per (contender, seed) and an epoch cap per trial; an epoch that ends past
the deadline does not count. Every epoch's validation accuracy is recorded by one callback
with its time, so "best at the budget" and "time to reach a target" are read the same way for
every tool. Runs are interleaved (seed 0: A B C D, seed 1: B C D A, ...) so machine load drifts
over all contenders alike.

Sizing (<= ~25 min on 2 cores): 12 runs x BUDGET_S plus data preparation and the overrun of
each run's last epoch; 480 train / 160 valid notes keep an epoch of the seed model near 1-2 s.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import optuna
from optuna_integration.keras import KerasPruningCallback

from benchmarks.common import DATA_ROOT, markdown, save, table
from nsynth_research.core.keras_loop import build_optimizer
from nsynth_research.core.space import base_config, baseline_params, suggest, trial_config
from nsynth_research.core.storage import make_pruner
from nsynth_research.core.study_config import load_study_config
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.stats import load_or_compute_stats
from nsynth_research.instruments.model import build_model
from nsynth_research.instruments.pipeline import make_dataset

EXPERIMENT = Path("experiments/default.yaml")
SEEDS = (0, 1, 2)
BUDGET_S, MAX_EPOCHS, TRAIN_NOTES, VALID_NOTES, BATCH = 75.0, 6, 480, 160, 32
CONTENDERS = ("project: TPE + pruner", "KT Hyperband", "KT RandomSearch", "Optuna random")


class Recorder(keras.callbacks.Callback):
    """(seconds since start, val_accuracy) of every epoch that ended within the budget; stops
    the fit at the deadline. Shared, not copied: Keras Tuner deep-copies callbacks per trial."""

    def __init__(self, budget: float) -> None:
        super().__init__()
        self.start, self.budget, self.epochs = time.perf_counter(), budget, []

    def __deepcopy__(self, memo: dict) -> Recorder:
        return self

    def over(self) -> bool:
        return time.perf_counter() - self.start > self.budget

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed <= self.budget:
            self.epochs.append((elapsed, float((logs or {})["val_accuracy"])))
        if self.over():
            self.model.stop_training = True


def load_data(base: InstrumentConfig) -> tuple[np.ndarray, ...]:
    """A class-spread subset (every k-th note of the family-sorted manifests), in memory."""
    train_all, valid_all = read_split(DATA_ROOT, "train"), read_split(DATA_ROOT, "valid")
    train = train_all[:: max(1, len(train_all) // TRAIN_NOTES)][:TRAIN_NOTES]
    valid = valid_all[:: max(1, len(valid_all) // VALID_NOTES)][:VALID_NOTES]
    stats = load_or_compute_stats(DATA_ROOT, train, base.features, progress=False)

    def arrays(notes: list) -> tuple[np.ndarray, np.ndarray]:
        ds = make_dataset(notes, stats, base.features, batch_size=64, shuffle=False, seed=0)
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
        return np.concatenate(xs), np.concatenate(ys)

    return (*arrays(train), *arrays(valid))


def run() -> dict:
    study_cfg = load_study_config(EXPERIMENT, [f"overrides.data.root={DATA_ROOT}"])
    base = base_config(study_cfg, InstrumentConfig)
    space = study_cfg.search_space
    x, y, xv, yv = load_data(base)
    steps = int(np.ceil(len(x) / BATCH))

    def build(params: dict[str, Any]) -> keras.Model:
        cfg = trial_config(base, space, params)
        model = build_model(cfg.model, cfg.features)
        model.compile(
            optimizer=build_optimizer(cfg.optimizer, steps, MAX_EPOCHS),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    def fit(model: keras.Model, callbacks: list, **kw: Any) -> keras.callbacks.History:
        return model.fit(
            x, y, validation_data=(xv, yv), batch_size=BATCH, verbose=0, callbacks=callbacks, **kw
        )

    def optuna_run(seed: int, rec: Recorder, project: bool) -> None:
        if project:
            cfg = study_cfg.model_copy(
                update={"sampler": study_cfg.sampler.model_copy(update={"seed": seed})}
            )
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=cfg.sampler.n_startup_trials
            )
            pruner = make_pruner(cfg)
        else:
            sampler, pruner = optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
        study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
        if project and study_cfg.enqueue_baseline:
            study.enqueue_trial(baseline_params(study_cfg, base))

        def objective(trial: optuna.Trial) -> float:
            model = build(suggest(trial, space))
            cbs = [rec, *([KerasPruningCallback(trial, "val_accuracy")] if project else [])]
            hist = fit(model, cbs, epochs=MAX_EPOCHS)
            return max(hist.history["val_accuracy"])

        study.optimize(objective, callbacks=[lambda s, t: s.stop() if rec.over() else None])

    def tuner_run(kind: str, seed: int, rec: Recorder, tmp: str) -> None:
        def hypermodel(hp: kt.HyperParameters) -> keras.Model:
            params: dict[str, Any] = {}
            for name, spec in space.items():
                if spec.type == "categorical":
                    choices = (
                        list(spec.choices)
                        if isinstance(spec.choices, dict)
                        else [str(c) if isinstance(c, list) else c for c in spec.choices or ()]
                    )
                    params[name] = hp.Choice(name, choices)
                else:
                    params[name] = hp.Float(name, spec.low, spec.high, step=spec.step)
            return build(params)

        common = dict(
            objective="val_accuracy",
            seed=seed,
            directory=tmp,
            project_name=f"{kind}-{seed}",
            overwrite=True,
        )
        if kind == "KT Hyperband":
            tuner = kt.Hyperband(
                hypermodel, max_epochs=MAX_EPOCHS, factor=3, hyperband_iterations=1000, **common
            )
        else:
            tuner = kt.RandomSearch(hypermodel, max_trials=100_000, **common)
        # It only rewires TensorBoard callbacks (none here) but imports tensorboard, which
        # tensorflow-cpu does not install.
        tuner._configure_tensorboard_dir = lambda *args, **kwargs: None
        populate = tuner.oracle.populate_space
        tuner.oracle.populate_space = lambda trial_id: (
            {"status": "STOPPED", "values": None} if rec.over() else populate(trial_id)
        )
        tuner.search(
            x,
            y,
            validation_data=(xv, yv),
            batch_size=BATCH,
            epochs=MAX_EPOCHS,
            callbacks=[rec],
            verbose=0,
        )

    traces: dict[str, list[list[tuple[float, float]]]] = {c: [] for c in CONTENDERS}
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(SEEDS):
            for name in CONTENDERS[i % 4 :] + CONTENDERS[: i % 4]:
                keras.utils.set_random_seed(seed)
                optuna.logging.set_verbosity(optuna.logging.WARNING)
                rec = Recorder(BUDGET_S)
                if name.startswith("KT"):
                    tuner_run(name, seed, rec, tmp)
                else:
                    optuna_run(seed, rec, project=name.startswith("project"))
                traces[name].append(rec.epochs)
                print(
                    f"  {name} seed {seed}: {len(rec.epochs)} epochs, best "
                    f"{max((a for _, a in rec.epochs), default=0.0):.3f}",
                    flush=True,
                )
    return report(traces, study_cfg.pruner.model_dump())


def first_time(trace: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, acc in trace if acc >= target), None)


def report(traces: dict[str, list[list[tuple[float, float]]]], pruner: dict) -> dict:
    best = {c: [max((a for _, a in tr), default=0.0) for tr in trs] for c, trs in traces.items()}
    target = {c: statistics.mean(b) for c, b in best.items()}
    rows, to_target = [], {}
    for c in CONTENDERS:
        to_target[c] = {}
        for other in CONTENDERS:
            times = [first_time(tr, target[other]) for tr in traces[c]]
            reached = [t for t in times if t is not None]
            to_target[c][other] = {
                "median_s_where_reached": statistics.median(reached) if reached else None,
                "reached": len(reached),
            }
        cells = [
            f"{v['median_s_where_reached']:.0f} s ({v['reached']}/{len(SEEDS)})"
            if v["median_s_where_reached"] is not None
            else f"not (0/{len(SEEDS)})"
            for v in to_target[c].values()
        ]
        epochs = statistics.mean(len(tr) for tr in traces[c])
        rows.append(
            [
                c,
                target[c],
                statistics.pstdev(best[c]),
                min(best[c]),
                max(best[c]),
                target[c] / target["KT Hyperband"],
                epochs,
                *cells,
            ]
        )
    headers = [
        "contender",
        "best val acc (mean)",
        "sd",
        "min",
        "max",
        "x KT Hyperband",
        "epochs",
        *[f"time to {o}" for o in CONTENDERS],
    ]
    print(table(headers, rows))
    print(markdown(headers, rows))
    save(
        "search",
        {
            "seeds": list(SEEDS),
            "budget_seconds": BUDGET_S,
            "max_epochs_per_trial": MAX_EPOCHS,
            "train_notes": TRAIN_NOTES,
            "project_pruner": pruner,
            "valid_notes": VALID_NOTES,
            "reference": "KT Hyperband",
            "best_val_accuracy": best,
            "time_to_target": to_target,
            "traces": {c: [[list(e) for e in tr] for tr in trs] for c, trs in traces.items()},
        },
    )
    return {"best": target}
