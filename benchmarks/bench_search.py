"""search: this project's study against what a user would pick instead, head to head.

Contenders, 3 seeds each, on the same data and budget:
- project: TPE (the default study's sampler settings, baseline enqueued) + its pruner, trained
  as the study trains: its multi-fidelity start (`training.subset_epochs` on a fraction of
  the batches) and early stopping, through the project's own fit loop, each epoch reported
  to the pruner at its 1-based number as the study's trials report it;
- Keras Tuner Hyperband (max_epochs = the epoch cap, factor 3);
- Keras Tuner RandomSearch;
- Optuna random sampling without pruning.

Same search space: the default study's (`experiments/default.yaml`), expressed to Keras Tuner
as `Choice`s over the same labels and a stepped `Float` for dropout; every contender builds its
models with the project's `build_model` and the same loss (with the trial's label smoothing),
so the tools differ only in which configs they try and how long they train them (feature-
space augmentation is applied by none: the features are held in memory). Same data: one
subset of the default corpus's train and valid splits (never test), normalised features held
in memory, fed to `model.fit` alike. Same budget: wall seconds per (contender, seed) and an
epoch cap per trial; an epoch that ends past the deadline does not count. One callback records
every epoch's validation accuracy with its time, so "best at the budget" and "time to a good
model" (Hyperband's final best, `search_report`) are read alike for every tool. Runs are
interleaved (seed 0: A B C D, seed 1: B C D A, ...) so machine load drifts over all alike.
`--seeds`, `--budget`, `--contenders` and `--variant LABEL=override,...` (the project's study
with other search settings) run subsets and alternatives, saved under `--name`.

Sizing (<= ~25 min on 2 idle cores): 12 runs x BUDGET_S, data preparation and each run's last
epoch's overrun; 480 train notes keep an epoch of the seed model near 1-2 s, and the whole
valid split (464 notes) keeps the noise of "best accuracy seen" down.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import optuna
import tensorflow as tf

from benchmarks.common import DATA_ROOT, EXPERIMENT
from benchmarks.search_report import report
from nsynth_research.core.keras_loop import SoftmaxCrossEntropy, build_optimizer, fit_classifier
from nsynth_research.core.space import base_config, baseline_params, suggest, trial_config
from nsynth_research.core.storage import make_pruner, make_sampler
from nsynth_research.core.study_config import StudyConfig, load_study_config
from nsynth_research.core.trial import _Pruning as StudyPruning
from nsynth_research.instruments.config import FeatureConfig, InstrumentConfig
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.stats import load_or_compute_stats
from nsynth_research.instruments.model import build_model
from nsynth_research.instruments.pipeline import make_dataset

SEEDS = (0, 1, 2)
BUDGET_S, MAX_EPOCHS, TRAIN_NOTES, VALID_NOTES, BATCH = 90.0, 6, 480, 464, 32
STEPS = int(np.ceil(TRAIN_NOTES / BATCH))
PROJECT = "project: TPE + pruner"
CONTENDERS = (PROJECT, "KT Hyperband", "KT RandomSearch", "Optuna random")


class Recorder(keras.callbacks.Callback):
    """(seconds since start, val_accuracy, trial) of every epoch that ended within the budget;
    stops the fit at the deadline. Shared, not copied: Keras Tuner deep-copies callbacks per
    trial."""

    def __init__(self, budget: float) -> None:
        super().__init__()
        self.start, self.budget, self.epochs, self.trial = time.perf_counter(), budget, [], -1

    def __deepcopy__(self, memo: dict) -> Recorder:
        return self

    def over(self) -> bool:
        return time.perf_counter() - self.start > self.budget

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed <= self.budget:
            self.epochs.append((elapsed, float((logs or {})["val_accuracy"]), self.trial))
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


@dataclass(frozen=True)
class Setup:
    """What every contender shares: the study's base config, search space and the in-memory
    features of every front-end."""

    study: StudyConfig
    base: InstrumentConfig
    data: dict[str, Arrays]
    tensors: dict[str, tuple[tf.Tensor, ...]] = field(default_factory=dict)

    @property
    def space(self) -> dict:
        return self.study.search_space

    def arrays(self, params: dict[str, Any]) -> Arrays:
        return self.data[trial_config(self.base, self.space, params).features.model_dump_json()]

    def build(self, params: dict[str, Any]) -> keras.Model:
        cfg = trial_config(self.base, self.space, params)
        model = build_model(cfg.model, cfg.features)
        model.compile(
            optimizer=build_optimizer(cfg.optimizer, STEPS, MAX_EPOCHS),
            loss=SoftmaxCrossEntropy(cfg.training.label_smoothing),
            metrics=["accuracy"],
        )
        return model

    def datasets(self, params: dict[str, Any], seed: int) -> tuple[tf.data.Dataset, ...]:
        """The same arrays as the tuners get, reshuffled every epoch as `model.fit` does; batches
        are gathered by index from tensors made once per front-end, so no trial copies them."""
        key = trial_config(self.base, self.space, params).features.model_dump_json()
        if key not in self.tensors:
            self.tensors[key] = tuple(tf.constant(a) for a in self.data[key])
        x, y, xv, yv = self.tensors[key]

        def batches(x: tf.Tensor, y: tf.Tensor, order: tf.data.Dataset) -> tf.data.Dataset:
            return order.map(lambda i: (tf.gather(x, i), tf.gather(y, i)))

        n, nv = int(x.shape[0]), int(xv.shape[0])
        train = batches(x, y, tf.data.Dataset.range(n).shuffle(n, seed=seed).batch(BATCH))
        return train, batches(xv, yv, tf.data.Dataset.range(nv).batch(256))


def optuna_run(setup: Setup, seed: int, rec: Recorder, project: StudyConfig | None) -> None:
    """The project's study (`project`: its sampler, pruner, enqueued baseline and training
    settings) or, without it, Optuna's random sampler training every trial its full epochs."""
    if project is not None:
        cfg = project.model_copy(
            update={"sampler": project.sampler.model_copy(update={"seed": seed})}
        )
        sampler, pruner = make_sampler(cfg), make_pruner(cfg)
        base = base_config(project, InstrumentConfig)
    else:
        sampler, pruner = optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
        base = setup.base
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    if project is not None and project.enqueue_baseline:
        study.enqueue_trial(baseline_params(project, base))

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, setup.space)
        cfg = trial_config(base, setup.space, params)
        # The project trains as its study does (subset start, early stopping); the plain
        # random baseline trains every trial for the full epoch cap.
        training = cfg.training.model_copy(
            update={"epochs": MAX_EPOCHS, "batch_size": BATCH}
            | ({} if project else {"subset_epochs": 0, "early_stopping_patience": None})
        )
        rec.trial = trial.number
        result = fit_classifier(
            setup.build(params),
            *setup.datasets(params, seed + trial.number),
            optimizer=cfg.optimizer,
            training=training,
            steps_per_epoch=STEPS,
            monitor="val_accuracy",
            mode="max",
            callbacks=[rec, *([StudyPruning(trial, "val_accuracy")] if project else [])],
            verbose=0,
        )
        return max(result.history["val_accuracy"])

    study.optimize(objective, callbacks=[lambda s, t: s.stop() if rec.over() else None])


def tuner_run(setup: Setup, kind: str, seed: int, rec: Recorder, tmp: str) -> None:
    space = setup.space

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
            return setup.build(hp_params(hp))

        def fit(self, hp: kt.HyperParameters, model: keras.Model, **kwargs: Any) -> Any:
            rec.trial += 1
            x, y, xv, yv = setup.arrays(hp_params(hp))
            return model.fit(x, y, validation_data=(xv, yv), **kwargs)

    hypermodel = HyperModel()
    common = dict(objective="val_accuracy", seed=seed, directory=tmp, overwrite=True)
    common["project_name"] = f"{kind}-{seed}"
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
    tuner.search(batch_size=BATCH, epochs=MAX_EPOCHS, callbacks=[rec], verbose=0)


def run(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv or [])
    study = load_study_config(EXPERIMENT, [f"overrides.data.root={DATA_ROOT}"])
    base = base_config(study, InstrumentConfig)
    setup = Setup(study, base, load_data(base, front_ends(study, base)))
    projects = {PROJECT: study} | {
        f"project: {label}": load_study_config(
            EXPERIMENT, [f"overrides.data.root={DATA_ROOT}", *overrides.split(",")]
        )
        for label, _, overrides in (v.partition("=") for v in args.variant)
    }
    names = [*(args.contenders or CONTENDERS), *list(projects)[1:]]
    traces: dict[str, list[list[tuple[float, float, int]]]] = {c: [] for c in names}
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(args.seeds):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                keras.utils.set_random_seed(seed)
                optuna.logging.set_verbosity(optuna.logging.WARNING)
                rec = Recorder(args.budget)
                if name.startswith("KT"):
                    tuner_run(setup, name, seed, rec, tmp)
                else:
                    optuna_run(setup, seed, rec, projects.get(name))
                traces[name].append(rec.epochs)
                print(
                    f"  {name} seed {seed}: {len(rec.epochs)} epochs, {rec.trial + 1} trials, "
                    f"best {max((a for _, a, _ in rec.epochs), default=0.0):.3f}",
                    flush=True,
                )
    meta = {
        "seeds": list(args.seeds),
        "budget_seconds": args.budget,
        "max_epochs_per_trial": MAX_EPOCHS,
        "train_notes": TRAIN_NOTES,
        "valid_notes": VALID_NOTES,
        "project_pruner": study.pruner.model_dump(),
        "project_sampler": study.sampler.model_dump(),
        "variants": args.variant,
    }
    return report(args.name, traces, meta)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_search")
    p.add_argument("--seeds", type=lambda t: [int(v) for v in t.split(",")], default=SEEDS)
    p.add_argument("--budget", type=float, default=BUDGET_S, help="wall seconds a run")
    p.add_argument("--contenders", type=lambda t: t.split(","), help=f"of {CONTENDERS}")
    p.add_argument("--variant", action="append", default=[], help="LABEL=override,override")
    p.add_argument("--name", default="search", help="results file name")
    return p


if __name__ == "__main__":
    run(sys.argv[1:])
