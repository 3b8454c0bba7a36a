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
    #: What `fit` keeps the best epoch by and the study compares; see `with_objective`.
    objective: Objective
    #: Every objective the task can optimise, by metric name (a study's `objective:` picks
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


def with_objective(task: Task, metric: str | None) -> Task:
    """The task optimising `metric` (None: its default objective), for a study whose YAML
    names one: `fit` keeps the epoch best by it and the study, pruner and selection compare
    it. An objective the task does not offer is refused by name, listing the offered ones."""
    offered = getattr(task, "objectives", None) or {task.objective.metric: task.objective}
    if metric is None or metric == task.objective.metric:
        return task
    if metric not in offered:
        raise ConfigError(
            f"objective: {metric!r} is not an objective of task {task.name!r}; it offers "
            f"{', '.join(sorted(offered))}"
        )
    bound = copy.copy(task)
    bound.objective = offered[metric]
    return bound
