"""Where a study lives (SQLite beside the MLflow store, or a shared PostgreSQL URL), how it
samples and prunes, and how it is opened.

What each guarantee rests on:
- A restart proposes new points: the sampler is re-seeded per trial from the study seed and
  the trial's number (the count of trials already in storage), never replayed from the start.
- One study, one definition: the creator stores its definition (`definition`), and a YAML
  that reuses the name with another definition is refused.
- A storage that cannot be reached, or that would log a password, is one line of error.
- Trials of dead workers are failed whenever the study is opened (`liveness.reap`).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.trial import FrozenTrial

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.files import create_atomically
from nsynth_research.core.orchestration import RUN_ATTR as RUN_ATTR  # importers name it from here
from nsynth_research.core.orchestration import (
    STORAGE_ENV,
    Owner,
    check_definition,
    close_trial_run,
    has_password,
    reap,
    redact,
)
from nsynth_research.core.orchestration import URI_ATTR as URI_ATTR
from nsynth_research.core.study_config import StudyConfig

log = logging.getLogger(__name__)

#: Seconds between Optuna heartbeats; a trial silent for GRACE seconds was killed.
HEARTBEAT = 20
GRACE = 60
#: Seconds to wait for a database server to answer before calling it unreachable.
CONNECT_TIMEOUT = 15
#: Study attribute naming the process that created the study (see `study.parent_run`).
CREATOR_ATTR = "creator"


def storage_url(study: StudyConfig, base: ExperimentConfig) -> str:
    """The study's storage: its config, else NSYNTH_STORAGE, else SQLite in the MLflow store."""
    if study.storage:
        if has_password(study.storage):
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


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats, so a trial whose process was killed is failed later; a
    storage that cannot be opened is a UserError naming it (password masked)."""
    for attempt in range(3):
        try:
            return _rdb_storage(url)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Machines starting together on a fresh PostgreSQL race to create the tables.
            if attempt == 2:
                raise
            time.sleep(1 + attempt)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ArgumentError) as exc:
            raise UserError(
                f"cannot open the study storage {redact(url)}: {first_line(exc)}; check that "
                f"the database is up and that {STORAGE_ENV} (or the experiment's `storage`) "
                "names it"
            ) from None
        except ImportError as exc:
            missing = getattr(exc.__cause__, "name", None) or "its driver"
            raise UserError(
                f"the study storage {redact(url)} needs the database driver {missing!r}, which "
                "is not installed; install it, or name an installed one in the URL (e.g. "
                "postgresql+psycopg2://)"
            ) from None
    raise AssertionError("unreachable")


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line, any password in it masked."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    connect: dict[str, Any] = {}
    psycopg2 = url.startswith(("postgresql://", "postgresql+psycopg2://"))
    if url.startswith("sqlite"):
        connect["timeout"] = 60
    elif psycopg2 and "connect_timeout" not in url:
        connect["connect_timeout"] = CONNECT_TIMEOUT
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
            engine_kwargs={"connect_args": connect} if connect else None,
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
    # Trials report epoch N at step N (from 1), and Optuna prunes from step n_warmup_steps
    # on: so n_warmup_steps epochs are never pruned, the first prunable one is the next.
    warmup = p.n_warmup_steps + 1
    median = optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=warmup)
    if p.name == "median":
        return median
    if p.name == "percentile":
        return optuna.pruners.PercentilePruner(
            p.percentile, n_startup_trials=p.n_startup_trials, n_warmup_steps=warmup
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
        # n_startup_steps counts the epochs reported before it may prune: the warm-up ones
        # and the first prunable one, as for the others.
        return optuna.pruners.WilcoxonPruner(p_threshold=p.p_threshold, n_startup_steps=warmup)
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
    if created:
        opt.set_user_attr(CREATOR_ATTR, Owner.me().tags())
    check_definition(opt, study, base)
    reap(opt)
    return opt, created


def load_study(study: StudyConfig, base: ExperimentConfig, direction: str) -> optuna.Study:
    return open_study(study, base, direction)[0]
