"""Where a study lives (SQLite beside the MLflow store, or a shared PostgreSQL URL), how it
samples and prunes, and how trials of dead workers are found and closed.

What each guarantee rests on:
- A dead worker's trial is failed, with its MLflow run: on this host as soon as its owner
  process is gone (`process.Owner`), on any host once its Optuna heartbeat is older than
  GRACE seconds. `reap` runs before a worker starts, between trials and at the study's end.
- Exactly n_trials trials finish: a trial that finds the study's slots already taken by
  earlier trials (finished, or running with a live owner) is failed unrun as surplus
  (`surplus`), and a study whose running trials die is topped up by the next worker.
- A restart proposes new points: the sampler is re-seeded per trial from the study seed and
  the trial's number (the count of trials already in storage), never replayed from the start.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from mlflow.tracking import MlflowClient
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.files import create_atomically
from nsynth_research.core.process import Owner
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.tracking import close_run

log = logging.getLogger(__name__)

RUN_ATTR = "mlflow_run_id"
URI_ATTR = "mlflow_tracking_uri"
#: Environment variable holding the shared study storage URL (it may carry a password).
STORAGE_ENV = "NSYNTH_STORAGE"
#: Seconds between Optuna heartbeats; a trial silent for GRACE seconds was killed.
HEARTBEAT = 20
GRACE = 60
#: Trial states that hold one of the study's n_trials slots.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HOLDING = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)


def redact(url: str) -> str:
    """The URL with any password replaced by ***, safe to log as a param or tag."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def storage_url(study: StudyConfig, base: ExperimentConfig) -> str:
    """The study's storage: its config, else NSYNTH_STORAGE, else SQLite in the MLflow store."""
    if study.storage:
        if redact(study.storage) != study.storage:
            raise UserError(
                f"the storage URL of study {study.name!r} carries a password, which would be "
                f"logged with the study; remove `storage` from the experiment YAML and export "
                f"{STORAGE_ENV}=<url> on each machine instead"
            )
        return study.storage
    if os.environ.get(STORAGE_ENV):
        return os.environ[STORAGE_ENV]
    db = Path(base.tracking.store).resolve() / "optuna.db"
    if not db.exists():
        create_atomically(db, _build_optuna_db, 16 * 2**20, "the Optuna study store")
    return f"sqlite:///{db}"


def _build_optuna_db(path: Path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    storage.engine.dispose()


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """RDB storage with heartbeats, so a trial whose process was killed is failed later."""
    for attempt in range(3):
        try:
            return _rdb_storage(url)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Machines starting together on a fresh PostgreSQL race to create the tables.
            if attempt == 2:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        # Heartbeats are flagged experimental; they are what fails a killed worker's trial.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT,
            grace_period=GRACE,
            heartbeat_stale_trial_callback=lambda study, trial: close_trial_run(
                trial, f"no heartbeat from its worker for over {GRACE} s (the worker died)"
            ),
            engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
        )


def seed_for(seed: int, number: int) -> int:
    """A well-mixed seed per (study seed, trial number): trial n draws the same stream
    whichever worker, machine or restart runs it, and no two trials share a stream."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler rebuilt for every trial with the seed of that trial's number.

    Re-seeding one sampler at process start replays its stream after every restart, so a
    resumed study proposed its first points again. TPE and random keep no state besides their
    RNG (TPE reads the study's history from storage), so a fresh one per trial loses nothing.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._make(seed_for(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> Any:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: Any
    ) -> Any:
        return self._inner.sample_independent(study, trial, name, distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: Any, values: Any) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_sampler(study: StudyConfig) -> optuna.samplers.BaseSampler:
    s = study.sampler
    if s.name == "random":
        return TrialSeededSampler(lambda seed: optuna.samplers.RandomSampler(seed=seed), s.seed)
    return TrialSeededSampler(
        lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials),
        s.seed,
    )


def make_pruner(study: StudyConfig) -> optuna.pruners.BasePruner:
    """The configured pruner; see `PrunerConfig` for what each one stops."""
    p = study.pruner
    median = optuna.pruners.MedianPruner(
        n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
    )
    if p.name == "median":
        return median
    if p.name == "percentile":
        return optuna.pruners.PercentilePruner(
            p.percentile, n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    if p.name == "patience":
        return optuna.pruners.PatientPruner(median, patience=p.patience)
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    if p.name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(
            p_threshold=p.p_threshold, n_startup_steps=p.n_warmup_steps
        )
    return optuna.pruners.NopPruner()


def open_study(
    study: StudyConfig, base: ExperimentConfig, direction: str
) -> tuple[optuna.Study, bool]:
    """The study and whether this call created it: of many machines starting together,
    exactly one creates it (the name is unique in storage) and seeds it with its first
    trial and parent run; the others join. Trials of dead workers are failed first."""
    kwargs: dict[str, Any] = {
        "study_name": study.name,
        "storage": open_storage(storage_url(study, base)),
        "direction": direction,
        "sampler": make_sampler(study),
        "pruner": make_pruner(study),
    }
    try:
        opt, created = optuna.create_study(**kwargs), True
    except optuna.exceptions.DuplicatedStudyError:
        opt, created = optuna.create_study(**kwargs, load_if_exists=True), False
    reap(opt)
    return opt, created


def load_study(study: StudyConfig, base: ExperimentConfig, direction: str) -> optuna.Study:
    return open_study(study, base, direction)[0]


def claim_trial(trial: optuna.Trial) -> None:
    """Record this process as the trial's owner, so its death can be told from a slow run."""
    for key, value in Owner.me().tags().items():
        trial.set_user_attr(key, value)


def close_trial_run(trial: FrozenTrial, reason: str) -> None:
    """End the MLflow run of a failed trial FAILED with `reason` (if it has one, still open)."""
    run_id, uri = trial.user_attrs.get(RUN_ATTR), trial.user_attrs.get(URI_ATTR)
    if run_id and uri and close_run(MlflowClient(uri), run_id, f"trial {trial.number}: {reason}"):
        log.warning("trial %d's run %s closed as FAILED: %s", trial.number, run_id, reason)


def _fail(opt: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    try:
        opt._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        return opt._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False  # it ended meanwhile, or another worker failed it first


def reap(opt: optuna.Study) -> list[int]:
    """Fail every RUNNING trial whose worker is dead, close its run, and say so."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = {t.number for t in opt.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(opt)  # heartbeat older than GRACE: any host
    failed = []
    for t in opt.get_trials(deepcopy=False):
        owner = Owner.from_tags(t.user_attrs)
        if t.state == TrialState.RUNNING and owner is not None and owner.gone():
            reason = f"its worker ({owner}) died mid-trial"
            if _fail(opt, t, reason):
                close_trial_run(t, reason)
                failed.append(t.number)
        elif t.state == TrialState.FAIL and t.number in before:
            failed.append(t.number)
    for number in failed:
        log.warning("study %s: trial %d was left RUNNING by a dead worker; failed it (it does "
                    "not count toward n_trials)", opt.study_name, number)
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
    earlier = [
        t for t in opt.get_trials(deepcopy=False, states=HOLDING) if t.number < trial.number
    ]
    return len(earlier) >= n_trials
