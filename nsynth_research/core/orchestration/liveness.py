"""Which trials of a study are alive, which hold one of its n_trials slots, and how trials of
dead workers are found and closed.

What each guarantee rests on:
- A dead worker's trial is failed, with its MLflow run: on this host as soon as its owner
  process is gone (`process.Owner`), on any host once its Optuna heartbeat is older than the
  storage's grace period. `reap` runs before a worker starts, between trials and at the
  study's end, and whenever a command opens the study.
- Exactly n_trials trials finish: a trial that finds the study's slots already taken by
  earlier trials (finished, or running with a live owner) is failed unrun as surplus
  (`surplus`), and a study whose running trials die is topped up by the next worker.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from datetime import datetime

import optuna
from mlflow.tracking import MlflowClient
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from nsynth_research.core.orchestration.orphans import close_run
from nsynth_research.core.orchestration.process import Owner
from nsynth_research.core.orchestration.urls import TRACKING_ENV, unredact

log = logging.getLogger(__name__)

RUN_ATTR = "mlflow_run_id"
#: The tracking URI of the trial's run, redacted: a URL with a password is found again from
#: this machine's NSYNTH_TRACKING_URI.
URI_ATTR = "mlflow_tracking_uri"
#: Seconds between checks while waiting for other workers' trials.
POLL = 2.0
#: Trial states that hold one of the study's n_trials slots.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HOLDING = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)


def claim_trial(trial: optuna.Trial) -> None:
    """Record this process as the trial's owner, so its death can be told from a slow run."""
    for key, value in Owner.me().tags().items():
        trial.set_user_attr(key, value)


def close_trial_run(trial: FrozenTrial, reason: str) -> None:
    """End the MLflow run of a failed trial FAILED with `reason` (if it has one, still open)."""
    run_id = trial.user_attrs.get(RUN_ATTR)
    uri = unredact(trial.user_attrs.get(URI_ATTR, ""), os.environ.get(TRACKING_ENV))
    if run_id and uri and close_run(MlflowClient(uri), run_id, f"trial {trial.number}: {reason}"):
        log.warning("trial %d's run %s closed as FAILED: %s", trial.number, run_id, reason)


def fail_trial(opt: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Fail a RUNNING trial with `reason`; False if it ended meanwhile (or another worker
    failed it first)."""
    try:
        opt._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        return opt._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False


def reap(opt: optuna.Study) -> list[int]:
    """Fail every RUNNING trial whose worker is dead, close its run, and say so."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = {t.number for t in opt.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(opt)  # heartbeat older than the grace: any host
    failed = []
    for t in opt.get_trials(deepcopy=False):
        owner = Owner.from_tags(t.user_attrs)
        if t.state == TrialState.RUNNING and owner is not None and owner.gone():
            reason = f"its worker ({owner}) died mid-trial"
            if fail_trial(opt, t, reason):
                close_trial_run(t, reason)
                failed.append(t.number)
        elif t.state == TrialState.FAIL and t.number in before:
            failed.append(t.number)
    for number in failed:
        log.warning("study %s: trial %d was left RUNNING by a dead worker; failed it (it does "
                    "not count toward n_trials)", opt.study_name, number)  # fmt: skip
    return failed


@dataclass(frozen=True)
class Progress:
    """Where a study with a trial budget stands: finished trials and trials running now."""

    n_trials: int
    finished: int
    running: list[FrozenTrial]

    @property
    def complete(self) -> bool:
        return self.finished >= self.n_trials

    @property
    def free(self) -> int:
        return self.n_trials - self.finished - len(self.running)

    def describe_running(self) -> str:
        now = datetime.now()
        return ", ".join(
            f"trial {t.number} ({Owner.from_tags(t.user_attrs) or 'owner unknown'}, "
            f"started {(now - t.datetime_start).total_seconds():.0f} s ago)"
            if t.datetime_start
            else f"trial {t.number}"
            for t in self.running
        )


def progress(opt: optuna.Study, n_trials: int) -> Progress:
    """The study's progress toward n_trials; `complete` means ready for its evaluation."""
    trials = opt.get_trials(deepcopy=False)
    return Progress(
        n_trials,
        sum(t.state in FINISHED for t in trials),
        # Queued (WAITING) trials hold no slot: the next worker to ask runs them.
        [t for t in trials if t.state == TrialState.RUNNING],
    )


def surplus(opt: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Whether the n_trials slots are already held by trials numbered before this one.

    Two workers that each see one free slot both create a trial; the later-numbered one finds
    the slot taken here and is failed unrun, so the study never finishes more than n_trials.
    """
    earlier = [t for t in opt.get_trials(deepcopy=False, states=HOLDING) if t.number < trial.number]
    return len(earlier) >= n_trials


def free_slots(opt: optuna.Study, n_trials: int, deadline: float | None) -> int:
    """How many trials this worker may start now: 0 once the study has n_trials finished
    trials or the deadline has passed. While live workers elsewhere hold every open slot, it
    waits for them (saying once which trials it waits for) rather than overshoot; a dead
    worker's trial is failed (`reap`) and its slot counts as free again."""
    waiting_for: list[int] = []
    while deadline is None or time.time() < deadline:
        reap(opt)
        now = progress(opt, n_trials)
        if now.complete:
            return 0
        if now.free > 0:
            return now.free
        if [t.number for t in now.running] != waiting_for:
            waiting_for = [t.number for t in now.running]
            log.info(
                "study %s: %d of %d trials finished; waiting for %s",
                opt.study_name,
                now.finished,
                n_trials,
                now.describe_running(),
            )
        time.sleep(POLL)
    return 0
