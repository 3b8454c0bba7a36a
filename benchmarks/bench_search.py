"""search: this project's study against what a user would pick instead, head to head.

Contenders, 3 seeds each, on the same data and budget:
- project: TPE (the default study's sampler settings, baseline enqueued) + its pruner, trained
  as the study trains: its multi-fidelity start (`training.subset_epochs` on a fraction of
  the batches) and early stopping, through the project's own fit loop;
- Keras Tuner Hyperband (max_epochs = the epoch cap, factor 3);
- Keras Tuner RandomSearch;
- Optuna random sampling without pruning.

Same search space: the default study's (`experiments/default.yaml`), expressed to Keras Tuner
as `Choice`s over the same labels and a stepped `Float` for dropout; every contender builds its
models with the project's `build_model` and the same loss (with the trial's label smoothing),
so the tools differ only in which configs they try and how long they train them (feature-
space augmentation is applied by none: the features are held in memory). Same data: one
subset of the default corpus's train and valid splits (never test), normalised features held
in memory, fed to `model.fit` alike. Same
budget: wall seconds per (contender, seed) and an epoch cap per trial; an epoch that ends past
the deadline does not count. Every epoch's validation accuracy is recorded by one callback
with its time, so "best at the budget" and "time to reach a target" are read the same way for
every tool. Runs are interleaved (seed 0: A B C D, seed 1: B C D A, ...) so machine load drifts
over all contenders alike.

Sizing (<= ~25 min on 2 cores): 12 runs x BUDGET_S plus data preparation and the overrun of
each run's last epoch; 480 train notes keep an epoch of the seed model near 1-2 s, and the
whole valid split (464 notes) keeps the noise of "best accuracy seen" down.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import optuna
import tensorflow as tf
from optuna_integration.keras import KerasPruningCallback

from benchmarks.common import DATA_ROOT, EXPERIMENT, markdown, save, table
from nsynth_research.core.keras_loop import SoftmaxCrossEntropy, build_optimizer, fit_classifier
from nsynth_research.core.space import base_config, baseline_params, suggest, trial_config
from nsynth_research.core.storage import make_pruner, make_sampler
from nsynth_research.core.study_config import StudyConfig, load_study_config
from nsynth_research.instruments.config import FeatureConfig, InstrumentConfig
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.stats import load_or_compute_stats
from nsynth_research.instruments.model import build_model
from nsynth_research.instruments.pipeline import make_dataset

SEEDS = (0, 1, 2)
BUDGET_S, MAX_EPOCHS, TRAIN_NOTES, VALID_NOTES, BATCH = 90.0, 6, 480, 464, 32
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


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def front_ends(study_cfg: StudyConfig, base: InstrumentConfig) -> list[FeatureConfig]:
    """Every feature setting the space can ask for: each choice of each key varied from the
    baseline point (the front-end is picked per trial, so each needs its own arrays)."""
    space, point = study_cfg.search_space, baseline_params(study_cfg, base)
    found: dict[str, FeatureConfig] = {}
    for name, spec in space.items():
        if spec.type != "categorical":
            continue
        for choice in spec.choices or ():
            label = str(choice) if isinstance(choice, list) else choice
            cfg = trial_config(base, space, {**point, name: label}).features
            found.setdefault(cfg.model_dump_json(), cfg)
    return list(found.values())


def load_data(base: InstrumentConfig, features: list[FeatureConfig]) -> dict[str, Arrays]:
    """A class-spread subset (every k-th note of the family-sorted manifests), in memory, as
    normalised features of every front-end, keyed by the feature settings."""
    train_all, valid_all = read_split(DATA_ROOT, "train"), read_split(DATA_ROOT, "valid")
    train = train_all[:: max(1, len(train_all) // TRAIN_NOTES)][:TRAIN_NOTES]
    valid = valid_all[:: max(1, len(valid_all) // VALID_NOTES)][:VALID_NOTES]
    data = {}
    for cfg in features:
        stats = load_or_compute_stats(DATA_ROOT, train, cfg, progress=False)

        def arrays(notes: list) -> tuple[np.ndarray, np.ndarray]:
            ds = make_dataset(notes, stats, cfg, batch_size=64, shuffle=False, seed=0)  # noqa: B023
            xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
            return np.concatenate(xs), np.concatenate(ys)

        data[cfg.model_dump_json()] = (*arrays(train), *arrays(valid))
    return data


def run() -> dict:
    study_cfg = load_study_config(EXPERIMENT, [f"overrides.data.root={DATA_ROOT}"])
    base = base_config(study_cfg, InstrumentConfig)
    space = study_cfg.search_space
    data = load_data(base, front_ends(study_cfg, base))
    steps = int(np.ceil(TRAIN_NOTES / BATCH))

    def arrays_for(params: dict[str, Any]) -> Arrays:
        return data[trial_config(base, space, params).features.model_dump_json()]

    def build(params: dict[str, Any]) -> keras.Model:
        cfg = trial_config(base, space, params)
        model = build_model(cfg.model, cfg.features)
        model.compile(
            optimizer=build_optimizer(cfg.optimizer, steps, MAX_EPOCHS),
            loss=SoftmaxCrossEntropy(cfg.training.label_smoothing),
            metrics=["accuracy"],
        )
        return model

    def datasets(params: dict[str, Any], seed: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        """The same arrays as the tuners get, reshuffled every epoch as `model.fit` does."""
        x, y, xv, yv = arrays_for(params)
        train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
        return train.batch(BATCH), tf.data.Dataset.from_tensor_slices((xv, yv)).batch(256)

    def optuna_run(seed: int, rec: Recorder, project: bool) -> None:
        if project:
            cfg = study_cfg.model_copy(
                update={"sampler": study_cfg.sampler.model_copy(update={"seed": seed})}
            )
            sampler, pruner = make_sampler(cfg), make_pruner(cfg)
        else:
            sampler, pruner = optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
        study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
        if project and study_cfg.enqueue_baseline:
            study.enqueue_trial(baseline_params(study_cfg, base))

        def objective(trial: optuna.Trial) -> float:
            params = suggest(trial, space)
            cfg = trial_config(base, space, params)
            # The project trains as its study does (subset start, early stopping); the plain
            # random baseline trains every trial for the full epoch cap.
            training = cfg.training.model_copy(
                update={"epochs": MAX_EPOCHS, "batch_size": BATCH}
                | ({} if project else {"subset_epochs": 0, "early_stopping_patience": None})
            )
            cbs = [rec, *([KerasPruningCallback(trial, "val_accuracy")] if project else [])]
            result = fit_classifier(
                build(params),
                *datasets(params, seed + trial.number),
                optimizer=cfg.optimizer,
                training=training,
                steps_per_epoch=steps,
                monitor="val_accuracy",
                mode="max",
                callbacks=cbs,
                verbose=0,
            )
            return max(result.history["val_accuracy"])

        study.optimize(objective, callbacks=[lambda s, t: s.stop() if rec.over() else None])

    def tuner_run(kind: str, seed: int, rec: Recorder, tmp: str) -> None:
        def hp_params(hp: kt.HyperParameters) -> dict[str, Any]:
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
            return params

        class HyperModel(kt.HyperModel):
            """Keras Tuner's documented way to tune preprocessing: `fit` feeds each trial
            the arrays of its own front-end."""

            def build(self, hp: kt.HyperParameters) -> keras.Model:
                return build(hp_params(hp))

            def fit(self, hp: kt.HyperParameters, model: keras.Model, **kwargs: Any) -> Any:
                x, y, xv, yv = arrays_for(hp_params(hp))
                return model.fit(x, y, validation_data=(xv, yv), **kwargs)

        hypermodel = HyperModel()
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
