"""The small interface through which the experiment core drives a task.

The core (tracking, study, selection, reproduce) knows nothing about any task's data: it
asks a `Task` to build its data if missing, prepare it once, fit one configured model with
the core's callbacks (epoch logging, pruning), log what only the task understands (figures,
statistics, the model), and score one held-out split for the single test read. Everything
else, the Optuna study, MLflow runs, the test-once guard, reproduction, is written once,
here in the core.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.errors import ConfigError, UserError
from nsynth_research.core.tracking import get_run, log_keras_model, open_store


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


@dataclass(frozen=True)
class LoggedModel:
    """A tracked run's model, ready to score: what `Task.score` hands `score_model`."""

    run_id: str
    #: The run's name (e.g. "trial 6"), for report titles.
    name: str
    uri: str
    tags: dict[str, str]
    model: Any


#: A task's run config type (its `config_type`), which every method of the task receives.
C = TypeVar("C", bound=ExperimentConfig)


class Task(Generic[C]):
    """One kind of experiment as the core sees it (tasks.py lists the project's), with what
    every task shares already written, so a task subclasses it and writes only what differs.

    A task names itself (`name`, `config_type`), its default `objective` and the Keras epoch
    log keys it logs (`epoch_metrics`), and implements `prepare`, `fit` and `score_model`
    (plus `data_fingerprint`, which the scoring preamble checks). Defaults: one objective, no
    study-fixed sections, no data to build, the model logged as the run's result, and
    `score`: fetch the run, check it logged a model and was trained on the data the config
    reads now, load the model, then `score_model`. docs/adding-a-task.md walks through one.
    """

    name: ClassVar[str]
    config_type: ClassVar[type[ExperimentConfig]]
    #: What `fit` keeps the best epoch by and the study compares: the task's default until
    #: `with_objective` binds the one a config's `training.objective` names.
    objective: Objective
    #: Every objective the task can optimise, by metric name (`training.objective` picks
    #: one); a task that lists none offers only `objective`.
    objectives: ClassVar[dict[str, Objective]] = {}
    #: Keras epoch-log key -> MLflow metric name, for the per-epoch curves.
    epoch_metrics: ClassVar[dict[str, str]] = {"loss": "train_loss", "val_loss": "val_loss"}
    #: Config sections `prepare` builds once for the whole study: no trial may vary them.
    study_fixed_sections: ClassVar[tuple[str, ...]] = ()
    #: The run tag holding the fingerprint of the train/valid data a run read (`log_inputs`).
    data_tag: ClassVar[str] = "data_fingerprint"
    #: What a registered champion of this task is used for, in the registry's description.
    champion_use: ClassVar[str] = ""

    def ensure_data(self, config: C) -> None:
        """Build the data the config points at when it is missing (default: nothing to do)."""

    def prepare(self, config: C, *, progress: bool = True) -> PreparedData:
        """Read train/valid data (never test) and everything trials share, once."""
        raise NotImplementedError

    def fit(
        self,
        config: C,
        data: Any,
        *,
        callbacks: Sequence[Any] = (),
        verbose: int | str = "auto",
    ) -> FitResult:
        """Fit one model; `callbacks` are Keras callbacks (logging, pruning) from the core."""
        raise NotImplementedError

    def log_inputs(self, config: C, data: Any) -> dict[str, str]:
        """Log task artifacts into the active run; returns tags naming the data (`data_tag`
        among them)."""
        return {self.data_tag: data.fingerprint}

    def log_result(self, config: C, result: FitResult) -> None:
        """Log task figures and the model into the active run (default: the model)."""
        if config.tracking.log_model:
            log_keras_model(result.model)

    def data_fingerprint(self, config: C) -> str:
        """Fingerprint of the train/valid data the config reads, as `log_inputs` tags it."""
        raise NotImplementedError

    def score(self, config: C, model_run_id: str, split: str, *, resamples: int) -> SplitReport:
        """Score the model logged by `model_run_id` on `split` (the test read, for the core)."""
        return self.score_model(
            config, self.logged_model(config, model_run_id), split, resamples=resamples
        )

    def logged_model(self, config: C, run_id: str) -> LoggedModel:
        """The run's model, refused when the run logged none or when the data the config
        reads has changed since the run was trained (its scores would mean something else)."""
        import mlflow

        run = get_run(open_store(config.tracking), run_id)
        tags = dict(run.data.tags)
        uri = tags.get("model_uri")
        if not uri:
            raise UserError(f"run {run_id} logged no model (tracking.log_model was false)")
        logged, now = tags.get(self.data_tag), self.data_fingerprint(config)
        if logged != now:
            raise UserError(
                f"the {self.name} data changed since run {run_id} was trained (fingerprint "
                f"{logged}, now {now}); re-run the sweep on the current data"
            )
        name = tags.get("mlflow.runName", run_id)
        return LoggedModel(run_id, name, uri, tags, mlflow.keras.load_model(uri))

    def score_model(
        self, config: C, logged: LoggedModel, split: str, *, resamples: int
    ) -> SplitReport:
        """Metrics, summary lines (the objective's test figure first) and figures of
        `logged` on `split`."""
        raise NotImplementedError


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
