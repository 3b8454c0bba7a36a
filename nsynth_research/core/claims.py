"""The claim on a study's single test read, held in the study's own Optuna storage.

A test read must be claimed before the first test prediction, and the claim must be atomic:
two `make evaluate` runs racing (two machines finishing a shared sweep together) may not both
read the test split. A check-then-set on an MLflow tag is not atomic. What is: creating a row
under a unique key. Optuna's storages (SQLite, PostgreSQL, MySQL) already hold the study with
a unique `study_name`, so read number n of study S is claimed by creating the (empty) Optuna
study `S:test-read-n`: the database lets exactly one creator win, on every backend Optuna
supports, and the claim lives beside the study it guards. Its user attributes name the
evaluation run and the claiming process.

A claim is never released: an evaluation that crashes after claiming may already have seen
test predictions, so its FAILED run still blocks a silent second read. Only a forced read
takes the next number, and the summary then says the test split was read more than once.
Nor is a study still running evaluated (`check_ready`): it would select from part of it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any

import optuna
from mlflow.exceptions import MlflowException
from optuna.exceptions import DuplicatedStudyError
from optuna.study import StudyDirection
from optuna.trial import TrialState

from nsynth_research.core.process import Owner
from nsynth_research.core.storage import STORAGE_ENV, progress
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.tracking import STATE_TAG

#: Suffix of the Optuna study that records read number n of a study.
CLAIM_NAME = "{study}:test-read-{number}"


@dataclass(frozen=True)
class ReadClaim:
    """One claimed read of a study's test split."""

    number: int
    run_id: str
    owner: str
    claimed_at: float
    forced: bool


class ClaimLost(Exception):
    """Another evaluation claimed this read number first (it holds `read`)."""

    def __init__(self, read: ReadClaim) -> None:
        super().__init__(f"test read {read.number} was claimed by run {read.run_id}")
        self.read = read


def claimed_reads(storage: optuna.storages.BaseStorage, study_name: str) -> list[ReadClaim]:
    """Every claimed read of the study, in order (empty: the test split was never read)."""
    reads = []
    number = 1
    while True:
        try:
            claim_id = storage.get_study_id_from_name(
                CLAIM_NAME.format(study=study_name, number=number)
            )
        except KeyError:
            return reads
        attrs = storage.get_study_user_attrs(claim_id)
        reads.append(
            ReadClaim(
                number=number,
                run_id=str(attrs.get("run_id", "")),
                owner=str(attrs.get("owner", "unknown")),
                claimed_at=float(attrs.get("claimed_at", 0.0)),
                forced=bool(attrs.get("forced", False)),
            )
        )
        number += 1


def claim_test_read(
    storage: optuna.storages.BaseStorage, study_name: str, run_id: str, *, force: bool
) -> ReadClaim:
    """Claim the next read of the study's test split for `run_id`, atomically.

    Without `force` only read 1 may be claimed: if it exists (or another process creates it
    first), `ClaimLost` names its holder. With `force`, the next free number is taken.
    """
    number = 1
    while True:
        name = CLAIM_NAME.format(study=study_name, number=number)
        try:
            claim_id = storage.create_new_study([StudyDirection.MAXIMIZE], name)
        except DuplicatedStudyError:
            if not force:
                held = claimed_reads(storage, study_name)
                if held:
                    raise ClaimLost(held[0]) from None
                raise  # created and gone: not something Optuna does
            number += 1
            continue
        me = Owner.me()
        read = ReadClaim(number, run_id, f"pid {me.pid} on {me.host}", time.time(), number > 1)
        # The claim row exists from here on; its attributes only describe it.
        storage.set_study_user_attr(claim_id, "run_id", run_id)
        storage.set_study_user_attr(claim_id, "owner", read.owner)
        storage.set_study_user_attr(claim_id, "claimed_at", read.claimed_at)
        storage.set_study_user_attr(claim_id, "forced", read.forced)
        return read


class StudyNotReady(Exception):
    """The study is still running (here or on another machine): evaluating now would select
    from an incomplete study and spend the single test read. Not an error: exit cleanly."""


def check_ready(opt: optuna.Study, study: StudyConfig) -> None:
    """Raise StudyNotReady while trials run anywhere, or, on a storage shared between
    machines, while fewer than n_trials have finished (another machine will add them)."""
    n_trials = study.n_trials or 0
    now = progress(opt, n_trials)
    # Only trials a worker is running: a queued (WAITING) one nobody will start must not
    # hold the evaluation back forever.
    now = replace(now, running=[t for t in now.running if t.state == TrialState.RUNNING])
    shared = bool(study.storage or os.environ.get(STORAGE_ENV))
    if now.running:
        raise StudyNotReady(
            f"study {study.name!r} is not finished: {now.describe_running()} still running; "
            "its test split is read once the study is complete (run `make evaluate` then)"
        )
    if shared and study.n_trials is not None and not now.complete:
        raise StudyNotReady(
            f"study {study.name!r} has {now.finished} of {study.n_trials} trials finished on "
            "its shared storage and none running here; evaluate once the other machines "
            "have finished it"
        )


def describe_read(read: ReadClaim, client: Any) -> str:
    """'run X (FINISHED)', or what a crashed claim means for the test figure."""
    try:
        run = client.get_run(read.run_id)
        state = run.data.tags.get(STATE_TAG, run.info.status)
    except MlflowException:
        state = "unknown"
    if state == "FINISHED":
        return f"run {read.run_id}"
    return (
        f"run {read.run_id}, which ended {state} after claiming the read ({read.owner}): "
        "test predictions may have been made, so the read counts"
    )
