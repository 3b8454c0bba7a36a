"""The study: Optuna proposes configs, each trial is one tracked training run of the task
scored on its validation split, and the parent MLflow run collects the study's figures.

The study drives training (never the reverse) and never touches the test split: that is
`selection`'s single job, after the study. Storage is resumable and shared: rerunning a sweep
continues the same study, workers on many machines join it, trials left RUNNING by dead
workers are failed (see `liveness` for what each guarantee rests on), and every worker returns
only once the study has exactly n_trials finished trials, or its deadline has passed. The
parent run records its owner like every run, so a sweep killed outright leaves nothing that
the next command does not close, and a sweep that fails ends its parent FAILED with the error.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from mlflow.entities import RunStatus
from optuna.trial import TrialState

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.orchestration import (
    FINISHED,
    HOLDING,
    Progress,
    free_slots,
    limit_threads,
    progress,
    spawn_workers,
)
from nsynth_research.core.parent_run import PARENT_ATTR, end_parent, parent_run
from nsynth_research.core.space import base_config, baseline_params, check_search_space
from nsynth_research.core.storage import load_study, open_study
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.study_report import log_study_artifacts
from nsynth_research.core.task import Task, recorded_objective
from nsynth_research.core.tracking import STATE_TAG, check_writable, open_store
from nsynth_research.core.trial import StudyContext, SurplusTrial, objective

log = logging.getLogger(__name__)


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
    """Run trials until the study has exactly n_trials finished trials or the deadline passes
    (`free_slots` waits while other workers hold the open slots, and refills dead ones)."""
    opt = load_study(ctx.study, ctx.base, ctx.task.objective.direction)
    n = ctx.study.n_trials

    def run(trial: optuna.Trial) -> float:
        return objective(ctx, trial, worker)

    streak = _FailureStreak(max(3, n or 0))
    if n is None:
        timeout = None if deadline is None else deadline - time.time()
        opt.optimize(run, timeout=timeout, callbacks=[streak], catch=(UserError,))
        return
    while free := free_slots(opt, n, deadline):
        opt.optimize(
            run,
            n_trials=free,
            timeout=None if deadline is None else max(1.0, deadline - time.time()),
            # Trials other workers run hold slots too: stop when none is left to take.
            callbacks=[streak, optuna.study.MaxTrialsCallback(n, states=HOLDING)],
            catch=(UserError, SurplusTrial),
        )


def prepare_study(task: Task, study: StudyConfig) -> tuple[ExperimentConfig, optuna.Study, str]:
    """Validate the search space, open the study, enqueue the baseline once, open the parent.

    `task` must be bound to the base config's objective (`with_objective`): the base then
    names it, and is refused before anything is opened if it names another."""
    base = recorded_objective(task, base_config(study, task.config_type))
    check_search_space(study, base, task.study_fixed_sections)
    # The tracking store first: a refusal for disk space, or for a read-only store, must
    # come before the study exists.
    open_store(base.tracking)
    check_writable(base.tracking)
    opt, created = open_study(study, base, task.objective.direction)
    if created and study.enqueue_baseline:
        opt.enqueue_trial(baseline_params(study, base), user_attrs={"baseline": True})
        opt.set_user_attr("baseline_enqueued", True)
    done = sum(t.state in FINISHED for t in opt.trials)
    log.info(
        "study %s: %s; %d trials so far, %d finished",
        study.name,
        "created" if created else "resumed",
        len(opt.trials),
        done,
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
    """Entry point of a spawned worker: same study, same per-trial seeds (it stops with the
    sweep that started it: `process.stop_with_parent`, called by the command)."""
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
    #: Where the study stands toward n_trials (complete unless a time limit stopped it).
    progress: Progress
    #: Why the sweep ended before n_trials ("" when the study is complete).
    stopped: str = ""


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
    client = open_store(base.tracking)
    procs = []
    try:
        data = task.prepare(base)
        log.info("study %s: data %s", study.name, data.fingerprint)
        minutes = study.timeout_minutes
        deadline = None if minutes is None else time.time() + 60 * minutes
        procs = spawn_workers(experiment_path, workers, deadline, overrides or [])
        run_worker(StudyContext(task, study, base, data, parent), 0, deadline)
        for number, proc in enumerate(procs, start=1):
            if proc.wait() != 0:
                # Its trials were failed and refilled by the loop above; say what happened.
                code = proc.returncode
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                log.warning("sweep worker %d (pid %d) %s", number, proc.pid, how)
        opt = load_study(study, base, task.objective.direction)  # fails dead workers' trials
        log_study_artifacts(opt, base, parent, task.objective)
    except BaseException as exc:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        end_parent(client, parent, exc)
        raise
    now = progress(opt, study.n_trials or 0)
    stopped = ""
    if study.n_trials is not None and not now.complete:
        stopped = f"by its time limit (timeout_minutes: {minutes:g})" if minutes else "early"
    client.set_tag(parent, STATE_TAG, "INCOMPLETE" if stopped else "FINISHED")
    client.set_terminated(parent, RunStatus.to_string(RunStatus.FINISHED))
    return SweepOutcome(opt, base, parent, time.perf_counter() - start, now, stopped)
