"""The study: Optuna proposes configs, each trial is one tracked training run of the task
scored on its validation split, and the parent MLflow run collects the study's figures.

The study drives training (never the reverse) and never touches the test split: that is
`selection`'s single job, after the study. Storage is resumable and shared: rerunning a sweep
continues the same study, workers on many machines join it, trials left RUNNING by dead
workers are failed (see `storage` for what each guarantee rests on), and every worker returns
only once the study has exactly n_trials finished trials, or its deadline has passed.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
from mlflow.entities import RunStatus
from optuna.trial import TrialState
from optuna_integration.keras import KerasPruningCallback

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.describe import (
    mark_pruned,
    pruned_note,
    search_params,
    set_experiment_note,
    set_run_note,
    study_note,
    study_params,
)
from nsynth_research.core.errors import UserError
from nsynth_research.core.process import limit_threads, spawn_workers
from nsynth_research.core.runs import TrackedResult, tracked_training
from nsynth_research.core.space import (
    base_config,
    baseline_params,
    check_search_space,
    study_experiment,
    suggest,
    trial_config,
)
from nsynth_research.core.storage import (
    FINISHED,
    HOLDING,
    RUN_ATTR,
    URI_ATTR,
    claim_trial,
    load_study,
    open_study,
    progress,
    reap,
    redact,
    storage_url,
    surplus,
)
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.study_report import log_study_artifacts
from nsynth_research.core.task import Objective, Task
from nsynth_research.core.tracking import (
    STATE_TAG,
    experiment_id,
    git_version,
    open_store,
    tracking_uri,
)

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
STUDY_TAG = "study"
TRIAL_TAG = "trial_number"
#: Seconds between looks at a study whose remaining trials run in other workers.
POLL = 2.0
#: Seconds a joining worker waits for the study's creator to open the parent run.
PARENT_WAIT = 60.0


class SurplusTrial(Exception):
    """A trial created after the study's n_trials slots were taken; failed before it runs."""


class _QuietInterrupts(logging.Filter):
    """Optuna logs every failed trial with its traceback; for a Ctrl-C/SIGTERM, a user error
    or a surplus trial the one-line message says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(
            record.exc_info[1], KeyboardInterrupt | UserError | SurplusTrial
        ):
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("optuna.study._optimize").addFilter(_QuietInterrupts())


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
        self.trial.set_user_attr(URI_ATTR, self.uri)


class _Pruning(KerasPruningCallback):
    """Optuna's Keras pruning, remembering the 1-based epoch and value it pruned at, for the
    pruned run's name, tag and description."""

    pruned_at: int | None = None
    value: float | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        try:
            super().on_epoch_end(epoch, logs)
        except optuna.TrialPruned:
            self.pruned_at, self.value = epoch + 1, (logs or {}).get(self._monitor)
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
            mark_pruned(
                open_store(config.tracking), recorder.run_id, trial.number, pruning.pruned_at,
                pruned_note(trial.number, pruning.pruned_at, ctx.task.objective.label,
                            pruning.value),
            )
        raise
    r = tracked.result
    trial.set_user_attr("epochs_run", r.epochs_run)
    trial.set_user_attr("wall_seconds", round(r.seconds, 2))
    # Every validation score the task reports (in-library, cross-library, ...), for the summary.
    trial.set_user_attr(
        "scores", {k: float(v) for k, v in r.metrics.items() if k.startswith("best_val")}
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


def parent_run(
    study: StudyConfig,
    base: ExperimentConfig,
    opt: optuna.Study,
    created: bool = True,
    label: str = "the objective",
) -> str:
    """The study's one parent run: opened by the study's creator, reopened by a resume or a
    worker that joins (which waits for the creator to open it first)."""
    client = open_store(base.tracking)
    waited = time.time() + (0.0 if created else PARENT_WAIT)
    while not (run_id := opt.user_attrs.get(PARENT_ATTR)) and time.time() < waited:
        time.sleep(POLL)
    if run_id:
        client.update_run(run_id, status="RUNNING")
        return run_id
    exp = experiment_id(base.tracking, client, study_experiment(study))
    # The URL, never its password: the tracking store is readable by the whole lab.
    storage = redact(storage_url(study, base))
    run = client.create_run(
        exp,
        run_name=f"study {study.name}",
        tags={
            STUDY_TAG: study.name,
            "role": "study",
            "optuna_storage": storage,
            **git_version(),
        },
    )
    run_id = run.info.run_id
    for key, value in study_params(study).items():
        client.log_param(run_id, key, value)
    set_run_note(client, run_id, study_note(study, label))
    set_experiment_note(client, exp, study_note(study, label))
    opt.set_user_attr(PARENT_ATTR, run_id)
    client.log_text(run_id, study.model_dump_json(indent=2), "study.json")
    client.log_text(run_id, base.to_yaml(), "base_config.yaml")
    return run_id


class _FailureStreak:
    """Stops a worker whose trials keep failing (a broken config would otherwise be retried
    forever, since failed trials do not count toward n_trials)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.streak = limit, 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        failed = trial.state == TrialState.FAIL and not trial.user_attrs.get("surplus")
        self.streak = self.streak + 1 if failed else 0
        if self.streak >= self.limit:
            raise UserError(
                f"study {study.study_name!r}: {self.streak} trials in a row failed (last: trial "
                f"{trial.number}); see the log above for the error, fix it and resume"
            )


def run_worker(ctx: StudyContext, worker: int, deadline: float | None) -> None:
    """Run trials until the study has exactly n_trials finished trials or the deadline passes.

    Trials running in other live workers hold their slots, so this worker waits for them
    rather than overshoot; a dead worker's trial is failed (`reap`) and its slot refilled."""
    opt = load_study(ctx.study, ctx.base, ctx.task.objective.direction)
    n = ctx.study.n_trials

    def run(trial: optuna.Trial) -> float:
        return objective(ctx, trial, worker)

    streak = _FailureStreak(max(3, n or 0))
    if n is None:
        opt.optimize(run, timeout=deadline - time.time(), callbacks=[streak], catch=(UserError,))
        return
    waiting_for: list[int] = []
    while deadline is None or time.time() < deadline:
        reap(opt)
        now = progress(opt, n)
        if now.complete:
            return
        if now.free <= 0:
            if [t.number for t in now.running] != waiting_for:
                waiting_for = [t.number for t in now.running]
                log.info(
                    "study %s: %d of %d trials finished; waiting for %s",
                    opt.study_name, now.finished, n, now.describe_running(),
                )
            time.sleep(POLL)
            continue
        opt.optimize(
            run,
            n_trials=now.free,
            timeout=None if deadline is None else max(1.0, deadline - time.time()),
            # Trials other workers run hold slots too: stop when none is left to take.
            callbacks=[streak, optuna.study.MaxTrialsCallback(n, states=HOLDING)],
            catch=(UserError, SurplusTrial),
        )


def prepare_study(task: Task, study: StudyConfig) -> tuple[ExperimentConfig, optuna.Study, str]:
    """Validate the search space, open the study, enqueue the baseline once, open the parent."""
    base = base_config(study, task.config_type)
    check_search_space(study, base, task.study_fixed_sections)
    opt, created = open_study(study, base, task.objective.direction)
    if created and study.enqueue_baseline:
        opt.enqueue_trial(baseline_params(study, base), user_attrs={"baseline": True})
        opt.set_user_attr("baseline_enqueued", True)
    done = sum(t.state in FINISHED for t in opt.trials)
    log.info(
        "study %s: %s; %d trials so far, %d finished",
        study.name, "created" if created else "resumed", len(opt.trials), done,
    )
    if opt.metric_names is None:
        # Names the objective on Optuna's plots and in optuna-dashboard ("Objective 0").
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            opt.set_metric_names([task.objective.label])
    return base, opt, parent_run(study, base, opt, created, task.objective.label)


def worker_main(
    task: Task, study: StudyConfig, worker: int, workers: int, deadline: float | None
) -> None:
    """Entry point of a spawned worker: same study, same per-trial seeds."""
    limit_threads(workers)
    base = base_config(study, task.config_type)
    opt = load_study(study, base, task.objective.direction)
    parent = opt.user_attrs.get(PARENT_ATTR)
    if not parent:
        raise UserError(f"study {study.name!r} has no parent run yet; start it with `sweep`")
    data = task.prepare(base, progress=False)
    run_worker(StudyContext(task, study, base, data, parent), worker, deadline)


@dataclass(frozen=True)
class SweepOutcome:
    study: optuna.Study
    base: ExperimentConfig
    parent_run_id: str
    seconds: float


def run_sweep(
    task: Task,
    study: StudyConfig,
    experiment_path: Path,
    *,
    workers: int = 1,
    overrides: list[str] | None = None,
) -> SweepOutcome:
    """Run (or resume) the study with `workers` processes, then log its artifacts."""
    start = time.perf_counter()
    if workers > 1:
        limit_threads(workers)
    base, opt, parent = prepare_study(task, study)
    data = task.prepare(base)
    log.info("study %s: data %s", study.name, data.fingerprint)
    deadline = None if study.timeout_minutes is None else time.time() + 60 * study.timeout_minutes
    procs = spawn_workers(experiment_path, workers, deadline, overrides or [])
    client = open_store(base.tracking)
    try:
        run_worker(StudyContext(task, study, base, data, parent), 0, deadline)
        for number, proc in enumerate(procs, start=1):
            if proc.wait() != 0:
                # Its trials were failed and refilled by the loop above; say what happened.
                code = proc.returncode
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                log.warning("sweep worker %d (pid %d) %s", number, proc.pid, how)
    except BaseException:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        client.set_tag(parent, STATE_TAG, "INTERRUPTED")
        client.set_terminated(parent, RunStatus.to_string(RunStatus.KILLED))
        raise
    opt = load_study(study, base, task.objective.direction)  # fails dead workers' trials
    log_study_artifacts(opt, base, parent, task.objective)
    client.set_tag(parent, STATE_TAG, "FINISHED")
    client.set_terminated(parent, RunStatus.to_string(RunStatus.FINISHED))
    return SweepOutcome(opt, base, parent, time.perf_counter() - start)
