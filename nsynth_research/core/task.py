"""The small interface through which the experiment core drives a task.

The core (tracking, study, selection, reproduce) knows nothing about audio or melodies: it
asks a `Task` to prepare data once, fit one configured model with the core's callbacks
(epoch logging, pruning), log what only the task understands (figures, statistics, the
model), and score one held-out split for the single test read. Everything else, the Optuna
study, MLflow runs, the test-once guard, reproduction, is written once, here in the core.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.errors import ConfigError


@dataclass(frozen=True)
class Objective:
    """What a study optimises: a per-epoch Keras log key, its direction and a readable name."""

    metric: str
    direction: Literal["maximize", "minimize"]
    label: str

    def better(self, a: float, b: float) -> bool:
        """True when `a` is strictly better than `b`."""
        return a > b if self.direction == "maximize" else a < b


class PreparedData(Protocol):
    """What a task's `prepare` returns: shared by every trial, identified by a fingerprint."""

    @property
    def fingerprint(self) -> str: ...


@dataclass
class FitResult:
    """One fitted model and what the core logs about it; `outputs` is the task's own."""

    model: Any
    history: dict[str, list[float]]
    #: 0-based epoch whose weights were kept.
    best_epoch: int
    epochs_run: int
    seconds: float
    #: The objective's best validation value: the number the study compares.
    objective: float
    #: Summary metrics logged on the run (best_val_accuracy, wall_seconds, ...).
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: Any = None


@dataclass
class SplitReport:
    """A model scored on one split: headline metrics, text, and artifacts to log."""

    metrics: dict[str, float]
    #: Lines for the summary a person reads (the headline with its interval first).
    lines: list[str]
    #: The scored model's MLflow URI, registered as the champion after the test read.
    model_uri: str
    #: Artifact path -> matplotlib Figure or text.
    artifacts: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class Task(Protocol):
    """One kind of experiment (instrument families, melody) as the core sees it."""

    name: str
    config_type: type[ExperimentConfig]
    #: What `fit` keeps the best epoch by and the study compares: the task's default until
    #: `with_objective` binds the one a config's `training.objective` names.
    objective: Objective
    #: Every objective the task can optimise, by metric name (`training.objective` picks
    #: one); a task that lists none offers only `objective`.
    objectives: dict[str, Objective]
    #: Keras epoch-log key -> MLflow metric name, for the per-epoch curves.
    epoch_metrics: dict[str, str]
    #: Config sections `prepare` builds once for the whole study: no trial may vary them.
    study_fixed_sections: tuple[str, ...]

    def ensure_data(self, config: ExperimentConfig, recipe: Path | None) -> None:
        """Build the task's data from `recipe` when the config points at data not yet made."""

    def prepare(self, config: ExperimentConfig, *, progress: bool = True) -> PreparedData:
        """Read train/valid data (never test) and everything trials share, once."""

    def fit(
        self,
        config: ExperimentConfig,
        data: Any,
        *,
        callbacks: Sequence[Any] = (),
        verbose: int | str = "auto",
    ) -> FitResult:
        """Fit one model; `callbacks` are Keras callbacks (logging, pruning) from the core."""

    def log_inputs(self, config: ExperimentConfig, data: Any) -> dict[str, str]:
        """Log task artifacts into the active run; returns tags naming the data."""

    def log_result(self, config: ExperimentConfig, result: FitResult) -> None:
        """Log task figures and the model into the active run."""

    def data_fingerprint(self, config: ExperimentConfig) -> str:
        """Fingerprint of the train/valid data the config reads, as `prepare` logs it."""

    def score(
        self, config: ExperimentConfig, model_run_id: str, split: str, *, resamples: int
    ) -> SplitReport:
        """Score the model logged by `model_run_id` on `split` (the test read, for the core)."""


def with_objective(task: Task, metric: str | None, key: str = "training.objective") -> Task:
    """The task optimising `metric`, a run config's `training.objective` (None: the task's
    default objective): `fit` keeps the epoch best by it and the study, pruner and selection
    compare it. Bound from the config at each entry point (train, sweep, reproduce), so the
    config, never a tag, says what a run optimised. An objective the task does not offer is
    refused by its config `key` (a study's `objective:` sets it), listing the offered ones,
    before any data is read."""
    offered = getattr(task, "objectives", None) or {task.objective.metric: task.objective}
    if metric is None or metric == task.objective.metric:
        return task
    if metric not in offered:
        raise ConfigError(
            f"{key}: {metric!r} is not an objective of task {task.name!r}; it offers "
            f"{', '.join(sorted(offered))}"
        )
    bound = copy.copy(task)
    bound.objective = offered[metric]
    return bound


def recorded_objective(task: Task, config: ExperimentConfig) -> ExperimentConfig:
    """`config` naming the objective `task` optimises, as a run logs it: a None (the task's
    default) is written out, so the logged config says what the run kept its best epoch by
    even if the task's default changes later. A config naming another objective than the
    task's is a caller's bug (the task was bound from a different config) and is refused
    rather than logged, since the logged config would then re-create a different run."""
    chosen = config.training.objective
    if chosen is None:
        training = config.training.model_copy(update={"objective": task.objective.metric})
        return config.model_copy(update={"training": training})
    if chosen != task.objective.metric:
        raise ValueError(
            f"the config's training.objective is {chosen!r} but task {task.name!r} is bound to "
            f"{task.objective.metric!r}; bind it with with_objective(task, "
            "config.training.objective)"
        )
    return config
