"""Where a study lives (SQLite beside the MLflow store, or a shared PostgreSQL URL), how it
samples and prunes, and how trials of killed workers are closed.

Heartbeats let a trial whose process was killed be failed later, with its MLflow run too.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.tracking import STATE_TAG

RUN_ATTR = "mlflow_run_id"
#: Seconds between Optuna heartbeats; a trial silent for GRACE seconds was killed.
HEARTBEAT = 20
GRACE = 60


def storage_url(study: StudyConfig, base: ExperimentConfig) -> str:
    if study.storage:
        return study.storage
    store = Path(base.tracking.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'optuna.db'}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """RDB storage with heartbeats, so a trial whose process was killed is failed later."""
    with warnings.catch_warnings():
        # Heartbeats are flagged experimental; they are what fails a killed worker's trial.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _rdb_storage(url)


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=HEARTBEAT,
        grace_period=GRACE,
        heartbeat_stale_trial_callback=close_failed_trial_run,
        engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
    )


def make_sampler(study: StudyConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    seed = study.sampler.seed + worker
    if study.sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=study.sampler.n_startup_trials)


def make_pruner(study: StudyConfig) -> optuna.pruners.BasePruner:
    p = study.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.NopPruner()


def load_study(
    study: StudyConfig, base: ExperimentConfig, direction: str, worker: int = 0
) -> optuna.Study:
    return optuna.create_study(
        study_name=study.name,
        storage=open_storage(storage_url(study, base)),
        direction=direction,
        sampler=make_sampler(study, worker),
        pruner=make_pruner(study),
        load_if_exists=True,
    )


def close_failed_trial_run(study: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat callback: a trial whose process died leaves its MLflow run FAILED too."""
    run_id = trial.user_attrs.get(RUN_ATTR)
    uri = trial.user_attrs.get("mlflow_tracking_uri")
    if not run_id or not uri:
        return
    client = MlflowClient(uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, STATE_TAG, "FAILED")
        client.set_tag(run_id, "error", "the process running this trial died (no heartbeat)")
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
