"""A study's test evaluations read back from where they were recorded: the claims in the
study's storage say how many reads were made and by which run; each run holds its figures.

A claim whose run cannot be read (a legacy claim whose process died before naming its run,
or a deleted run) still counts: the read is spent, and it comes back with no figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from nsynth_research.core.orchestration import ReadClaim, claimed_reads
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import open_storage, storage_url
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.task import Objective, Task
from nsynth_research.core.tracking import STATE_TAG, open_store

SUMMARY_ARTIFACT = "summary.txt"
#: Evaluation-run tag of a read made before n_trials: "<finished> of <n_trials> trials".
EARLY_TAG = "test_read_early"


@dataclass(frozen=True)
class Evaluation:
    """The final, once-per-study test figures of the champion."""

    run_id: str
    trial: int
    params: dict[str, Any]
    #: The champion's validation objective (what it was selected on).
    objective: float
    #: Headline test metrics, as the task named them (e.g. test_accuracy and its interval).
    metrics: dict[str, float]
    #: The task's summary lines, headline first.
    lines: list[str] = field(default_factory=list)
    registered: str = ""
    #: How the evaluation run ended: FINISHED, or FAILED when it crashed after its claim.
    state: str = "FINISHED"
    #: How many times the study's test split has been claimed (1 unless FORCE was used).
    reads: int = 1
    #: "<finished> of <n_trials> trials" when the read came before the study was complete.
    early: str = ""


def study_reads(study: StudyConfig, base: Any) -> list[ReadClaim]:
    """The claimed reads of the study's test split, from its storage."""
    return claimed_reads(open_storage(storage_url(study, base)), study.name)


def previous_evaluation(task: Task, study: StudyConfig) -> Evaluation | None:
    """The study's latest claimed test evaluation, read back from its run (None if the test
    split was never claimed). A run that crashed after its claim comes back FAILED."""
    base = base_config(study, task.config_type)
    reads = study_reads(study, base)
    if not reads:
        return None
    client = open_store(base.tracking)
    latest = reads[-1]
    try:
        return logged_evaluation(client, latest.run_id, task.objective, len(reads))
    except MlflowException:
        # A claim whose process died before naming its run (legacy stores), or whose run
        # was deleted: the read is spent all the same.
        return Evaluation(
            run_id=latest.run_id or "(none recorded)",
            trial=-1,
            params={},
            objective=float("nan"),
            metrics={},
            state="DIED" if not latest.run_id else "DELETED",
            reads=len(reads),
        )


def logged_evaluation(client: Any, run_id: str, objective: Objective, reads: int) -> Evaluation:
    """An evaluation run read back: its metrics, summary lines and how it ended."""
    if not run_id:
        raise MlflowException("the claim names no evaluation run")
    run = client.get_run(run_id)
    p = run.data.params
    try:
        lines = mlflow.artifacts.load_text(f"runs:/{run_id}/{SUMMARY_ARTIFACT}").splitlines()
    except MlflowException:
        lines = []
    return Evaluation(
        run_id=run_id,
        trial=int(p.get("trial", -1)),
        params={k.removeprefix("trial."): v for k, v in p.items() if k.startswith("trial.")},
        objective=run.data.metrics.get(f"selected_{objective.metric}", float("nan")),
        metrics=dict(run.data.metrics),
        lines=lines,
        registered=run.data.tags.get("registered_model", ""),
        state=run.data.tags.get(STATE_TAG, run.info.status),
        reads=reads,
        early=run.data.tags.get(EARLY_TAG, ""),
    )
