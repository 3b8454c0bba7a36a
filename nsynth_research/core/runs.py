"""One tracked training run of any task: the unit the study repeats and reproduce re-creates.

Every run logs its fully resolved config (`config.yaml`, enough alone to re-create it), its
params, code version, seed and data fingerprint, per-epoch curves by explicit run id (so
curves survive a pruned or crashed trial and parallel trials never mix), then whatever the
task logs about its result.

Metric names say which number they are. A column the user adds to the run table shows a
metric's last logged value, so the plain names (`val_accuracy`, `train_loss`, ...) are logged
once, with the value of the epoch whose weights the run kept (the number the study scored);
the per-epoch curves live under `epoch/<name>` with their whole history. Epochs count from 1
in every step, tag and description.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import keras
import mlflow
import numpy as np
import yaml
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from nsynth_research.core.config import ExperimentConfig, validate
from nsynth_research.core.describe import NOTE_TAG, datasets_note
from nsynth_research.core.errors import UserError
from nsynth_research.core.task import FitResult, Task, recorded_objective
from nsynth_research.core.tracking import get_run, tracked_run, tracking_uri

CONFIG_ARTIFACT = "config.yaml"
#: Prefix of the per-epoch curves (`epoch/val_accuracy`); MLflow groups them in one section.
EPOCH_PREFIX = "epoch/"
#: Run tag naming the metric the run kept its best epoch by: descriptive only, for the run
#: table. The run's config (`training.objective`) is what says it; nothing reads this tag
#: except `reproduce`, for runs logged before the config held it.
OBJECTIVE_TAG = "objective"
_C = TypeVar("_C", bound=ExperimentConfig)


def epoch_metric(name: str) -> str:
    """The MLflow name of a metric's per-epoch curve."""
    return f"{EPOCH_PREFIX}{name}"


class EpochLogger(keras.callbacks.Callback):
    """Logs each epoch's task metrics (renamed by `names`, under `epoch/`) to one run, at
    1-based steps (the epoch numbers the logs, tags and trial table use).

    The learning rate is logged only once a schedule has changed it: a constant rate is a
    config param, and a flat chart of it only pushes the curves that matter down the page."""

    def __init__(self, client: MlflowClient, run_id: str, names: dict[str, str]) -> None:
        super().__init__()
        self.client, self.run_id, self.names = client, run_id, names
        self.rates: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now, step = int(time.time() * 1000), epoch + 1
        metrics = [
            Metric(epoch_metric(self.names[k]), float(v), now, step)
            for k, v in (logs or {}).items()
            if k in self.names
        ]
        changed_before = len(set(self.rates)) > 1
        self.rates.append(float(np.asarray(self.model.optimizer.learning_rate)))
        if len(set(self.rates)) > 1:
            # The first change also logs the constant stretch before it, so the chart is whole.
            rates = self.rates[-1:] if changed_before else self.rates
            first = step - len(rates) + 1
            name = epoch_metric("learning_rate")
            metrics += [Metric(name, rate, now, s) for s, rate in enumerate(rates, start=first)]
        self.client.log_batch(self.run_id, metrics=metrics)


def run_config_tree(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """The resolved config logged with a run, as a dict (the caller picks the schema)."""
    get_run(client, run_id)
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{CONFIG_ARTIFACT}")
    except MlflowException:
        raise UserError(
            f"run {run_id} has no {CONFIG_ARTIFACT} artifact, so it cannot be rebuilt "
            "(was it logged by this project?)"
        ) from None
    tree = yaml.safe_load(text)
    if not isinstance(tree, dict):
        raise UserError(f"the {CONFIG_ARTIFACT} of run {run_id} is not a mapping")
    return tree


def log_config(config: ExperimentConfig) -> None:
    """Params and the resolved config file of the active run."""
    mlflow.log_params({k: str(v) for k, v in config.flat().items()})
    mlflow.log_text(config.to_yaml(), CONFIG_ARTIFACT)


@dataclass(frozen=True)
class TrackedResult:
    run_id: str
    result: FitResult


def scored_metrics(task: Task, result: FitResult) -> dict[str, float]:
    """The kept epoch's value of every per-epoch metric, under its plain name, and that
    epoch's 1-based number as `best_epoch`: what the run table shows for the run. The
    objective's own column is the exact number the study compared (`result.objective`)."""
    scored = {
        name: float(result.history[key][result.best_epoch])
        for key, name in task.epoch_metrics.items()
        if len(result.history.get(key, ())) > result.best_epoch
    }
    scored[task.epoch_metrics.get(task.objective.metric, task.objective.metric)] = float(
        result.objective
    )
    return {**scored, "best_epoch": float(result.best_epoch + 1)}


def tracked_training(
    task: Task,
    config: ExperimentConfig,
    data: Any,
    *,
    parent_run_id: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    pruned: tuple[type[BaseException], ...] = (),
    on_start: Callable[[str], None] | None = None,
    verbose: int | str = "auto",
    params: dict[str, str] | None = None,
    note: str = "",
) -> TrackedResult:
    """One training run, logged from its config to its model.

    `params` are logged beside the config's (a trial's searched choices); the run's
    description is `note` followed by the objective, its epoch, the data fingerprint and the
    datasets the run logged (read back, so the description and Datasets column agree). The
    logged config names the objective `task` is bound to (see `recorded_objective`)."""
    config = recorded_objective(task, config)
    with tracked_run(
        config.tracking,
        run_name=run_name,
        experiment=experiment,
        parent_run_id=parent_run_id,
        tags=tags,
        pruned=pruned,
    ) as run:
        run_id = run.info.run_id
        if on_start is not None:
            on_start(run_id)
        log_config(config)
        mlflow.log_params(params or {})
        inputs = task.log_inputs(config, data)
        mlflow.set_tags(
            {
                "task": task.name,
                "seed": str(config.seed),
                OBJECTIVE_TAG: task.objective.metric,
                **inputs,
            }
        )
        client = MlflowClient(tracking_uri(config.tracking))
        logger = EpochLogger(client, run_id, task.epoch_metrics)
        result = task.fit(config, data, callbacks=[logger, *callbacks], verbose=verbose)
        scored = scored_metrics(task, result)
        mlflow.log_metrics({k: v for k, v in result.metrics.items() if k not in scored})
        mlflow.log_metrics(scored, step=result.best_epoch + 1)
        result.metrics.update(scored)
        task.log_result(config, result)
        datasets = datasets_note(client.get_run(run_id))
        mlflow.set_tag(
            NOTE_TAG,
            f"{note}{task.objective.label} {result.objective:.4f} (best epoch "
            f"{result.best_epoch + 1} of {result.epochs_run}). Data "
            f"{inputs.get('data_fingerprint', data.fingerprint)}"
            + (f": {datasets}" if datasets else "")
            + ".",
        )
    return TrackedResult(run_id=run_id, result=result)


def run_config(client: MlflowClient, run_id: str, schema: type[_C]) -> _C:
    """A run's logged config validated as `schema`; a run of another task is named as such."""
    return config_from_tree(run_config_tree(client, run_id), run_id, schema)


def config_from_tree(tree: dict[str, Any], run_id: str, schema: type[_C]) -> _C:
    """`run_config` for a tree already fetched with `run_config_tree`."""
    want = schema.model_fields["task"].default
    got = tree.get("task", want)  # configs logged before tasks existed name none
    if got != want:
        raise UserError(f"run {run_id} is a {got!r} run, not a {want!r} one; pick a {want} run")
    return validate(tree, f"config of run {run_id}", schema)
