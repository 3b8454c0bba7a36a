"""The study: Optuna proposes configs, each trial is one tracked training run of the task
scored on its validation split, and the parent MLflow run collects the study's figures.

The study drives training (never the reverse) and never touches the test split: that is
`selection`'s single job, after the study. Storage is resumable: rerunning a sweep continues
the same study, and trials left RUNNING by a killed process are failed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
from mlflow.entities import RunStatus
from optuna.trial import TrialState
from optuna_integration.keras import KerasPruningCallback

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.runs import tracked_training
from nsynth_research.core.space import (
    base_config,
    baseline_params,
    check_search_space,
    study_experiment,
    suggest,
    trial_config,
)
from nsynth_research.core.storage import RUN_ATTR, load_study, storage_url
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.study_report import log_study_artifacts
from nsynth_research.core.task import Objective, Task
from nsynth_research.core.tracking import STATE_TAG, experiment_id, open_store, tracking_uri

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
STUDY_TAG = "study"
TRIAL_TAG = "trial_number"


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

    def __call__(self, run_id: str) -> None:
        self.trial.set_user_attr(RUN_ATTR, run_id)
        self.trial.set_user_attr("mlflow_tracking_uri", self.uri)


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
    params = suggest(trial, ctx.study.search_space)
    config = trial_config(ctx.base, ctx.study.search_space, params)
    tracked = tracked_training(
        ctx.task,
        config,
        ctx.data,
        parent_run_id=ctx.parent_run_id,
        experiment=study_experiment(ctx.study),
        run_name=f"trial {trial.number}",
        tags={STUDY_TAG: ctx.study.name, TRIAL_TAG: str(trial.number), "worker": str(worker)},
        callbacks=[
            _EpochProgress(trial.number, config.training.epochs, ctx.task.objective),
            KerasPruningCallback(trial, ctx.task.objective.metric),
        ],
        pruned=(optuna.TrialPruned,),
        on_start=_RunIdRecorder(trial, tracking_uri(config.tracking)),
        verbose=0,
    )
    r = tracked.result
    trial.set_user_attr("epochs_run", r.epochs_run)
    trial.set_user_attr("wall_seconds", round(r.seconds, 2))
    log.info(
        "trial %d: %s %.4f in %d epochs (%.0f s)",
        trial.number,
        ctx.task.objective.label,
        r.objective,
        r.epochs_run,
        r.seconds,
    )
    return r.objective


def parent_run(study: StudyConfig, base: ExperimentConfig, opt: optuna.Study) -> str:
    """The study's one parent run: created on first use, reopened when a sweep resumes."""
    client = open_store(base.tracking)
    run_id = opt.user_attrs.get(PARENT_ATTR)
    if run_id:
        client.update_run(run_id, status="RUNNING")
        return run_id
    exp = experiment_id(base.tracking, client, study_experiment(study))
    run = client.create_run(
        exp,
        run_name=f"study {study.name}",
        tags={STUDY_TAG: study.name, "role": "study", "optuna_storage": storage_url(study, base)},
    )
    run_id = run.info.run_id
    opt.set_user_attr(PARENT_ATTR, run_id)
    client.log_text(run_id, study.model_dump_json(indent=2), "study.json")
    client.log_text(run_id, base.to_yaml(), "base_config.yaml")
    return run_id


def remaining_trials(study: StudyConfig, opt: optuna.Study) -> int | None:
    if study.n_trials is None:
        return None
    done = [t for t in opt.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return max(0, study.n_trials - len(done))


def run_worker(ctx: StudyContext, worker: int, deadline: float | None) -> None:
    """Optimise until the study has n_trials finished trials or the deadline passes."""
    opt = load_study(ctx.study, ctx.base, ctx.task.objective.direction, worker)
    callbacks = []
    if ctx.study.n_trials is not None:
        # Trials other workers are running count too: otherwise each worker that finishes a
        # trial just before the last one ends starts another, overshooting n_trials.
        callbacks.append(
            optuna.study.MaxTrialsCallback(
                ctx.study.n_trials,
                states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
            )
        )
    left = remaining_trials(ctx.study, opt)
    if left == 0:
        return
    timeout = None if deadline is None else max(1.0, deadline - time.time())
    opt.optimize(
        lambda trial: objective(ctx, trial, worker),
        n_trials=left,
        timeout=timeout,
        callbacks=callbacks,
        catch=(UserError,),
    )


def prepare_study(task: Task, study: StudyConfig) -> tuple[ExperimentConfig, optuna.Study, str]:
    """Validate the search space, open the study, enqueue the baseline once, open the parent."""
    base = base_config(study, task.config_type)
    check_search_space(study, base)
    opt = load_study(study, base, task.objective.direction)
    if study.enqueue_baseline and not opt.trials and not opt.user_attrs.get("baseline_enqueued"):
        opt.enqueue_trial(baseline_params(study, base), user_attrs={"baseline": True})
        opt.set_user_attr("baseline_enqueued", True)
    return base, opt, parent_run(study, base, opt)


def spawn_workers(
    experiment_path: Path, workers: int, deadline: float | None, overrides: list[str]
) -> list[subprocess.Popen]:
    """Start workers 1..n-1 as processes beside this one, all on the same study storage."""
    procs = []
    for worker in range(1, workers):
        cmd = [
            sys.executable,
            "-m",
            "nsynth_research",
            "sweep-worker",
            "--experiment",
            str(experiment_path),
            "--worker",
            str(worker),
            "--workers",
            str(workers),
        ]
        if deadline is not None:
            cmd += ["--deadline", repr(deadline)]
        procs.append(subprocess.Popen([*cmd, *overrides]))
    return procs


def limit_threads(workers: int) -> None:
    """Split the machine's cores between worker processes instead of oversubscribing them."""
    import tensorflow as tf

    threads = max(1, (os.cpu_count() or 1) // workers)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(2, threads))


def worker_main(
    task: Task, study: StudyConfig, worker: int, workers: int, deadline: float | None
) -> None:
    """Entry point of a spawned worker: same study, its own sampler seed."""
    limit_threads(workers)
    base = base_config(study, task.config_type)
    opt = load_study(study, base, task.objective.direction, worker)
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
    log.info("study %s: data %s; %s trials so far", study.name, data.fingerprint, len(opt.trials))
    deadline = None if study.timeout_minutes is None else time.time() + 60 * study.timeout_minutes
    procs = spawn_workers(experiment_path, workers, deadline, overrides or [])
    client = open_store(base.tracking)
    try:
        run_worker(StudyContext(task, study, base, data, parent), 0, deadline)
        for number, proc in enumerate(procs, start=1):
            if proc.wait() != 0:
                raise UserError(f"sweep worker {number} exited with code {proc.returncode}")
    except BaseException:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        client.set_tag(parent, STATE_TAG, "INTERRUPTED")
        client.set_terminated(parent, RunStatus.to_string(RunStatus.KILLED))
        raise
    opt = load_study(study, base, task.objective.direction)
    log_study_artifacts(opt, base, parent, task.objective)
    client.set_tag(parent, STATE_TAG, "FINISHED")
    client.set_terminated(parent, RunStatus.to_string(RunStatus.FINISHED))
    return SweepOutcome(opt, base, parent, time.perf_counter() - start)
