"""A third task, defined only here, that the real core runs without a line of core changed:
the proof that the core knows no audio and no melody (tests/core/test_third_task.py), and
the example docs/adding-a-task.md walks through.

It classifies points drawn around three centres on a plane, with a small dense network.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf
from pydantic import Field

from nsynth_research.core.config import ExperimentConfig, Section
from nsynth_research.core.keras_loop import fit_classifier, seed_everything
from nsynth_research.core.task import FitResult, LoggedModel, Objective, SplitReport, Task

CENTRES = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])


class PointsConfig(Section):
    """How many points each split draws, and how far they scatter around their centre."""

    per_split: int = Field(default=90, ge=3)
    spread: float = Field(default=1.0, gt=0)
    seed: int = 0


class DenseConfig(Section):
    units: int = Field(default=16, ge=1)
    layers: int = Field(default=1, ge=1)


class ToyConfig(ExperimentConfig):
    task: Literal["toy"] = "toy"
    points: PointsConfig = PointsConfig()
    model: DenseConfig = DenseConfig()


@dataclass(frozen=True)
class Points:
    """Every split, drawn once from the config's seed; `fingerprint` names their content."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in ("train", "valid"):
            x, y = self.splits[name]
            digest.update(x.tobytes() + y.tobytes())
        return digest.hexdigest()[:16]


def draw(cfg: PointsConfig) -> Points:
    rng = np.random.default_rng(cfg.seed)
    splits = {}
    for name in ("train", "valid", "test"):
        y = rng.integers(0, len(CENTRES), cfg.per_split).astype(np.int32)
        x = (CENTRES[y] + rng.normal(0.0, cfg.spread, (cfg.per_split, 2))).astype(np.float32)
        splits[name] = (x, y)
    return Points(splits)


def dataset(x: np.ndarray, y: np.ndarray, batch: int, seed: int | None) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch)


class ToyTask(Task[ToyConfig]):
    """Which of three centres a point was drawn around."""

    name = "toy"
    config_type = ToyConfig
    objective = Objective("val_accuracy", "maximize", "validation accuracy")

    def prepare(self, config: ToyConfig, *, progress: bool = True) -> Points:
        return draw(config.points)

    def fit(
        self,
        config: ToyConfig,
        data: Points,
        *,
        callbacks: Sequence[Any] = (),
        verbose: int | str = "auto",
    ) -> FitResult:
        seed_everything(config.seed, config.training.deterministic)
        layers = [
            keras.layers.Dense(config.model.units, activation="relu")
            for _ in range(config.model.layers)
        ]
        model = keras.Sequential([keras.Input((2,)), *layers, keras.layers.Dense(3)])
        (x, y), valid = data.splits["train"], data.splits["valid"]
        batch = config.training.batch_size
        fit = fit_classifier(
            model,
            dataset(x, y, batch, config.seed),
            dataset(*valid, batch, None),
            optimizer=config.optimizer,
            training=config.training,
            steps_per_epoch=math.ceil(len(x) / batch),
            monitor=self.objective.metric,
            mode="max",
            callbacks=callbacks,
            verbose=verbose,
        )
        best = fit.history[self.objective.metric][fit.best_epoch]
        return FitResult(model, fit.history, fit.best_epoch, fit.epochs_run, fit.seconds, best)

    def data_fingerprint(self, config: ToyConfig) -> str:
        return draw(config.points).fingerprint

    def score_model(
        self, config: ToyConfig, logged: LoggedModel, split: str, *, resamples: int
    ) -> SplitReport:
        x, y = draw(config.points).splits[split]
        right = logged.model.predict(x, verbose=0).argmax(axis=1) == y
        accuracy = float(right.mean())
        # Points are drawn independently: they are the unit the interval resamples.
        rng = np.random.default_rng(config.seed)
        draws = rng.choice(right, (resamples, len(right))).mean(axis=1)
        low, high = (float(v) for v in np.quantile(draws, [0.025, 0.975]))
        line = f"{split} accuracy on {len(y)} drawn points {accuracy:.4f} [{low:.4f}, {high:.4f}]"
        return SplitReport(
            metrics={f"{split}_accuracy": accuracy},
            lines=[line],
            model_uri=logged.uri,
            tags={"headline_metric": f"{split}_accuracy"},
        )
