"""The study's parent MLflow run: one per study, opened by the study's creator, reopened by
every sweep that resumes or joins it, and ended with how the sweep ended.

It records its owner like every run (`process.Owner`), so a sweep killed outright leaves a
parent that the next command on its host closes; a joining process waits for the creator to
open it only while that creator can still do so.
"""

from __future__ import annotations

import logging
import time

import optuna
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.describe import (
    set_experiment_note,
    set_run_note,
    study_note,
    study_params,
)
from nsynth_research.core.orchestration import Owner, redact
from nsynth_research.core.space import study_experiment
from nsynth_research.core.storage import CREATOR_ATTR, storage_url
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.tracking import STATE_TAG, code_version, experiment_id, open_store
from nsynth_research.core.trial import STUDY_TAG

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
#: Seconds between checks while waiting for the parent run.
POLL = 2.0
#: Seconds a joining worker waits for the study's creator on another machine to open the
#: parent run (a creator on this machine is waited for only while it runs).
PARENT_WAIT = 60.0


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
    run_id = None if created else _wait_for_parent(opt)
    if run_id:
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, STATE_TAG, "RUNNING")
        for key, value in Owner.me().tags().items():
            client.set_tag(run_id, key, value)
        if "error" in client.get_run(run_id).data.tags:
            client.delete_tag(run_id, "error")  # the last sweep's failure, resumed from
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
            **code_version(),
            **Owner.me().tags(),
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


def _wait_for_parent(opt: optuna.Study) -> str | None:
    """The parent run of a study this process did not create: waited for while its creator
    may still open it (alive here, or on another machine for up to PARENT_WAIT), and None
    at once when the creator is gone (e.g. it was refused for disk space after creating it)."""
    creator = Owner.from_tags(opt.user_attrs.get(CREATOR_ATTR) or {})
    until = time.time() + PARENT_WAIT
    said = False
    while not (run_id := opt.user_attrs.get(PARENT_ATTR)):
        if creator is None or creator.gone() or time.time() > until:
            return None
        if not said:
            log.info("study %s: waiting for its creator (%s) to open the parent run",
                     opt.study_name, creator)  # fmt: skip
            said = True
        time.sleep(POLL)
    return run_id


def end_parent(client: MlflowClient, parent: str, exc: BaseException) -> None:
    """End the parent run of a sweep that raised: KILLED and INTERRUPTED on Ctrl-C/SIGTERM,
    FAILED with the error otherwise. A store that cannot take it (a full disk) leaves it to
    the next command, which closes it by its owner tags."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    try:
        client.set_tag(parent, STATE_TAG, "INTERRUPTED" if interrupted else "FAILED")
        if not interrupted:
            client.set_tag(parent, "error", f"{type(exc).__name__}: {exc}"[:5000])
        status = RunStatus.KILLED if interrupted else RunStatus.FAILED
        client.set_terminated(parent, RunStatus.to_string(status))
    except Exception as failed:
        log.warning(
            "the study's parent run %s could not be closed (%s)",
            parent,
            str(failed).splitlines()[0] if str(failed) else type(failed).__name__,
        )
