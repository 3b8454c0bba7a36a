"""One trial of a study: the config Optuna proposes, trained and logged as a child run of
the study's parent, pruned through the framework's Keras callback, its run id recorded on
the trial as soon as the run exists (so a dead worker's run can be closed later)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import keras
import optuna
from optuna_integration.keras import KerasPruningCallback

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.describe import (
    mark_pruned,
    pruned_note,
    search_params,
)
from nsynth_research.core.errors import MachineError, UserError
from nsynth_research.core.orchestration import RUN_ATTR, URI_ATTR, claim_trial, redact, surplus
from nsynth_research.core.runs import TrackedResult, tracked_training
from nsynth_research.core.space import (
    study_experiment,
    suggest,
    trial_config,
)
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.task import Objective, Task
from nsynth_research.core.tracking import (
    open_store,
    tracking_uri,
)

log = logging.getLogger(__name__)

STUDY_TAG = "study"
TRIAL_TAG = "trial_number"


class SurplusTrial(Exception):
    """A trial created after the study's n_trials slots were taken; failed before it runs."""


#: The logger Optuna reports each failed trial on, with its traceback.
OPTUNA_TRIAL_LOGGER = "optuna.study._optimize"


class QuietInterrupts(logging.Filter):
    """Optuna logs every failed trial with its traceback. For a user error or a surplus trial
    its one-line message says it all; for a Ctrl-C/SIGTERM or a failure of the machine (a
    full disk) the CLI's own line does, so Optuna's two lines about the trial are dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.silenced: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        trial = record.getMessage().split(" failed with", 1)[0]  # "Trial 3"
        if isinstance(error, KeyboardInterrupt | MachineError):
            self.silenced.add(trial)
            return False
        if trial in self.silenced and record.getMessage().startswith(f"{trial} failed with value"):
            self.silenced.discard(trial)
            return False
        if isinstance(error, UserError | SurplusTrial):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_trial_interrupts() -> None:
    """Install `QuietInterrupts` on Optuna's trial logger, once per process. The commands
    that run trials (sweep, sweep-worker) call it as they start; importing this module must
    not change the logging of a process that only uses it as a library."""
    logger = logging.getLogger(OPTUNA_TRIAL_LOGGER)
    if not any(isinstance(f, QuietInterrupts) for f in logger.filters):
        logger.addFilter(QuietInterrupts())


@dataclass(frozen=True)
class StudyContext:
    """What a worker needs to run trials: the task, study and base configs, data and parent."""

    task: Task
    study: StudyConfig
    base: ExperimentConfig
    data: Any
    parent_run_id: str


class _RunIdRecorder:
    """Stores the MLflow run id on the trial as soon as the run starts, so a trial killed
    mid-training can still have its run closed by the heartbeat callback."""

    def __init__(self, trial: optuna.Trial, uri: str) -> None:
        self.trial, self.uri = trial, uri
        self.run_id: str | None = None

    def __call__(self, run_id: str) -> None:
        self.run_id = run_id
        self.trial.set_user_attr(RUN_ATTR, run_id)
        self.trial.set_user_attr(URI_ATTR, redact(self.uri))


class _Pruning(KerasPruningCallback):
    """Optuna's Keras pruning, reporting each epoch at its 1-based number (the step MLflow,
    the logs and optuna-dashboard show) and remembering the epoch and logs it pruned at, for
    the pruned run's name, tag, description and scored metrics."""

    pruned_at: int | None = None
    value: float | None = None
    logs: dict[str, float] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        try:
            super().on_epoch_end(epoch + 1, logs)  # Keras counts epochs from 0
        except optuna.TrialPruned:
            self.pruned_at, self.logs = epoch + 1, dict(logs or {})
            self.value = self.logs.get(self._monitor)
            raise optuna.TrialPruned(f"pruned at epoch {self.pruned_at}") from None


class _EpochProgress(keras.callbacks.Callback):
    """One log line per epoch, naming the trial, so a long sweep shows where it is."""

    def __init__(self, trial: int, epochs: int, objective: Objective) -> None:
        super().__init__()
        self.trial, self.epochs, self.objective = trial, epochs, objective

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        log.info(
            "trial %d epoch %d/%d: train loss %.3f, %s %.4f",
            self.trial,
            epoch + 1,
            self.epochs,
            logs.get("loss", float("nan")),
            self.objective.label,
            logs.get(self.objective.metric, float("nan")),
        )


def objective(ctx: StudyContext, trial: optuna.Trial, worker: int = 0) -> float:
    claim_trial(trial)
    n = ctx.study.n_trials
    if n is not None and surplus(trial.study, trial, n):
        trial.set_user_attr("surplus", True)
        trial.study.stop()
        raise SurplusTrial(f"the study's {n} trials were already finished or running")
    params = suggest(trial, ctx.study.search_space)
    config = trial_config(ctx.base, ctx.study.search_space, params)
    pruning = _Pruning(trial, ctx.task.objective.metric)
    recorder = _RunIdRecorder(trial, tracking_uri(config.tracking))
    try:
        tracked = _train_trial(ctx, trial, worker, config, params, pruning, recorder)
    except optuna.TrialPruned:
        if recorder.run_id and pruning.pruned_at:
            # Optuna scores a pruned trial by its last report: the run table shows the same.
            names = ctx.task.epoch_metrics
            logs = {names[k]: float(v) for k, v in (pruning.logs or {}).items() if k in names}
            mark_pruned(
                open_store(config.tracking),
                recorder.run_id,
                trial.number,
                pruning.pruned_at,
                pruned_note(
                    trial.number, pruning.pruned_at, ctx.task.objective.label, pruning.value
                ),
                logs,
            )
        raise
    r = tracked.result
    trial.set_user_attr("epochs_run", r.epochs_run)
    trial.set_user_attr("wall_seconds", round(r.seconds, 2))
    # Every objective the task offers (one or several validation figures), as scored
    # on this trial's kept epoch, by label, for the summary.
    task = ctx.task
    offered = getattr(task, "objectives", None) or {task.objective.metric: task.objective}
    trial.set_user_attr(
        "scores", {o.label: float(r.metrics[m]) for m, o in offered.items() if m in r.metrics}
    )
    log.info(
        "trial %d: %s %.4f in %d epochs (%.0f s)",
        trial.number,
        ctx.task.objective.label,
        r.objective,
        r.epochs_run,
        r.seconds,
    )
    return r.objective


def _train_trial(
    ctx: StudyContext,
    trial: optuna.Trial,
    worker: int,
    config: ExperimentConfig,
    params: dict[str, Any],
    pruning: _Pruning,
    recorder: _RunIdRecorder,
) -> TrackedResult:
    return tracked_training(
        ctx.task,
        config,
        ctx.data,
        parent_run_id=ctx.parent_run_id,
        experiment=study_experiment(ctx.study),
        run_name=f"trial {trial.number}",
        tags={STUDY_TAG: ctx.study.name, TRIAL_TAG: str(trial.number), "worker": str(worker)},
        callbacks=[
            _EpochProgress(trial.number, config.training.epochs, ctx.task.objective),
            pruning,
        ],
        pruned=(optuna.TrialPruned,),
        on_start=recorder,
        verbose=0,
        params=search_params(params),
        note=f"Trial {trial.number} of study {ctx.study.name}"
        + (" (the seed baseline)" if trial.user_attrs.get("baseline") else "")
        + ": ",
    )
