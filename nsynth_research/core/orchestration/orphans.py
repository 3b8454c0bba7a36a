"""Runs and trials left RUNNING by processes that no longer exist, found and closed.

A process killed with SIGKILL cannot end its own MLflow run. Every run records its owner
(`process.Owner`), so the first command that opens the store on the owner's host closes each
RUNNING run whose owner is gone (FAILED, with the reason), and, for a trial's run, fails the
Optuna trial it belongs to as well: both died with the same process, so neither may be left
RUNNING beside the other.
"""

from __future__ import annotations

import logging
import os

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from nsynth_research.core.orchestration.process import Owner
from nsynth_research.core.orchestration.urls import STORAGE_ENV, unredact

log = logging.getLogger(__name__)

#: Tag that says how a run ended from the project's point of view (FINISHED, PRUNED, FAILED,
#: INTERRUPTED); MLflow's own status is set to match.
STATE_TAG = "state"


def close_run(client: MlflowClient, run_id: str, reason: str) -> bool:
    """End a run FAILED with `reason`, unless it already ended; True if this call ended it."""
    if client.get_run(run_id).info.status != "RUNNING":
        return False
    client.set_tag(run_id, STATE_TAG, "FAILED")
    client.set_tag(run_id, "error", reason)
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    return True


def close_orphaned_runs(client: MlflowClient) -> list[str]:
    """Close RUNNING runs whose owner process on this host no longer exists."""
    host = Owner.me().host
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    runs = client.search_runs(
        experiments, f"attributes.status = 'RUNNING' and tags.owner_host = '{host}'"
    )
    closed = []
    for run in runs:
        owner = Owner.from_tags(run.data.tags)
        if owner is None or not owner.gone():
            continue
        reason = f"its process ({owner}) died before the run ended (killed?)"
        if close_run(client, run.info.run_id, reason):
            log.warning("closed run %s as FAILED: %s", run.info.run_id, reason)
            closed.append(run.info.run_id)
            _fail_study_trial(client, run, reason)
    return closed


def _fail_study_trial(client: MlflowClient, run: mlflow.entities.Run, reason: str) -> None:
    """Fail the Optuna trial a closed trial run belongs to (same process, so it died too),
    so no command leaves one RUNNING and the other FAILED. The study's storage is the one its
    parent run logged (a redacted URL is matched against this machine's NSYNTH_STORAGE)."""
    import optuna
    from optuna.trial import TrialState

    tags = run.data.tags
    study, number, parent = (tags.get(k) for k in ("study", "trial_number", "mlflow.parentRunId"))
    if not (study and number and parent):
        return
    logged = client.get_run(parent).data.tags.get("optuna_storage", "")
    url = unredact(logged, os.environ.get(STORAGE_ENV)) if logged else None
    if not url:
        return  # the heartbeat fails it once a worker opens the study
    try:
        storage = optuna.storages.RDBStorage(url)
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study), int(number)
        )
        if storage.get_trial(trial_id).state == TrialState.RUNNING:
            storage.set_trial_user_attr(trial_id, "fail_reason", reason)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            log.warning("study %s: trial %s failed with its run: %s", study, number, reason)
        storage.engine.dispose()
    except Exception as exc:  # unreachable, gone or ended meanwhile: reap handles it later
        log.debug("could not fail trial %s of study %s: %s", number, study, exc)
