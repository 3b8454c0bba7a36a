"""Fault injection through the real command line: SIGKILL and SIGTERM at points of a trial,
of the evaluation (the instant its claim is recorded included), of one of two workers, of a
sweep's main process and of a single training run; a disk that fills mid-run; each time the
command says one line and the next command leaves the study whole (`procs.check_invariants`).
The machine's other failures (read-only or unreachable stores, data deleted mid-run, a setting
that cannot fit in memory, a reused study name, a near-copy of the test split) are
`test_faults_machine.py`'s."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import psutil
import pytest
import sqlalchemy
from optuna.trial import TrialState

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import load_study
from nsynth_research.core.study_config import load_study_config
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import InstrumentConfig
from tests.core.procs import (
    REPO,
    SHORT_GRACE,
    check_invariants,
    one_error_line,
    start,
    study_runs,
    write_study,
)

pytestmark = pytest.mark.slow
#: Kill this very process right after the claim on the test read is recorded.
KILL_AFTER_CLAIM = """
import os, signal
import nsynth_research.core.selection as selection
claim = selection.claim_test_read
def claim_then_die(*args, **kwargs):
    claim(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
selection.claim_test_read = claim_then_die
"""


def opened(path: Path):
    study = load_study_config(path)
    base = base_config(study, InstrumentConfig)
    return study, load_study(study, base, "maximize"), open_store(base.tracking)


def optuna_states(path: Path) -> list[TrialState]:
    """Trial states as stored, read without reaping (as a dashboard would show them)."""
    url = f"sqlite:///{path.parent / 'mlruns' / 'optuna.db'}"
    return [t.state for t in optuna.load_study(study_name="faults", storage=url).trials]


def sweep(path: Path, *extra: str) -> list[str]:
    return ["sweep", "--experiment", str(path), *extra]


def test_kills_and_terms_at_every_stage_then_resume(tiny_corpus: Path, tmp_path: Path) -> None:
    path = write_study(tmp_path, tiny_corpus, n_trials=3)
    started = time.perf_counter()

    # SIGKILL mid-trial. The next command on this host, whatever it is (here: the first
    # opening of the tracking store), closes the dead sweep's parent run and the trial's
    # run, and fails the Optuna trial with it: nothing stays RUNNING until the next sweep.
    killed = start(sweep(path), kill_on=r"trial 1 epoch 1/2")
    assert killed.wait() == -signal.SIGKILL, killed.text
    client = open_store(TrackingConfig(store=tmp_path / "mlruns"))
    assert [r.info.status for r in study_runs(client) if r.info.status == "RUNNING"] == []
    parent = next(r for r in study_runs(client) if r.data.tags.get("role") == "study")
    assert parent.info.status == "FAILED" and "died" in parent.data.tags["error"]
    assert optuna_states(path)[1] == TrialState.FAIL

    # SIGTERM mid-trial ends it with one line and exit 143: no Optuna warning about the
    # interrupted trial beside it, no traceback.
    termed = start(sweep(path), kill_on=r"trial 2 epoch 1/2", sig=signal.SIGTERM)
    assert termed.wait() == 143, termed.text
    assert "interrupted by SIGTERM" in termed.text and "Traceback" not in termed.text
    assert "failed with" not in termed.text, termed.text

    # SIGKILL during the evaluation, once its run exists.
    def evaluating() -> bool:
        client = open_store(base_config(load_study_config(path), InstrumentConfig).tracking)
        return any(
            r.data.tags.get("role") == "evaluation" and r.info.status == "RUNNING"
            for r in study_runs(client)
        )

    in_eval = start(sweep(path), kill_when=evaluating)
    assert in_eval.wait() == -signal.SIGKILL, in_eval.text

    # The last rerun finds the study complete and closes the killed evaluation's run.
    last = start(sweep(path))
    assert last.wait() == 0, last.text
    assert "Traceback" not in last.text
    _, opt, client = opened(path)
    # The killed evaluation may have claimed the test split: it is never read a second time.
    counts = check_invariants(opt, client, n_trials=3)
    assert counts["test_reads"] <= 1
    states = [t.state for t in opt.trials]
    assert states.count(TrialState.FAIL) == 2, states  # the SIGKILLed and the SIGTERMed trial
    failed_runs = {
        r.data.tags.get("trial_number"): r.data.tags.get("error", "")
        for r in study_runs(client)
        if r.info.status == "FAILED"
    }
    assert "died" in failed_runs["1"]  # closed by the next command, with the reason
    assert "SIGTERM" in failed_runs["2"]
    evaluation_errors = [
        r.data.tags.get("error", "")
        for r in study_runs(client)
        if r.data.tags.get("role") == "evaluation" and r.info.status == "FAILED"
    ]
    assert len(evaluation_errors) == 1 and "died" in evaluation_errors[0]
    print(f"fault sequence: {counts}, {time.perf_counter() - started:.0f} s")


def test_a_kill_at_the_claim_spends_the_read_without_wedging(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    """SIGKILL the instant the test read is claimed: the claim names its run (one insert), so
    every later command works, says the read is spent, and a forced read is counted."""
    path = write_study(tmp_path, tiny_corpus, n_trials=1)
    assert start(sweep(path, "--no-evaluate")).wait() == 0
    killed = start(["evaluate", "--experiment", str(path)], patch=KILL_AFTER_CLAIM)
    assert killed.wait() == -signal.SIGKILL, killed.text

    again = start(sweep(path))
    assert again.wait() == 0, again.text
    assert "already read" in again.text and "FAILED" in again.text
    assert "Traceback" not in again.text
    refused = start(["evaluate", "--experiment", str(path)])
    assert refused.wait() == 2
    assert "ended FAILED after claiming the read" in one_error_line(refused)

    forced = start(["evaluate", "--experiment", str(path), "--force"])
    assert forced.wait() == 0, forced.text
    assert "test read twice" in forced.text
    _, opt, client = opened(path)
    latest = client.get_run(opt.user_attrs["mlflow_parent_run_id"]).data.tags
    # The refusal after a forced read names that read's run, not the first one's.
    refused = start(["evaluate", "--experiment", str(path)])
    assert refused.wait() == 2
    assert latest["test_evaluation_run_id"] in one_error_line(refused)
    assert "3 times" in refused.text


def test_a_killed_worker_of_two_is_refilled_exactly(tiny_corpus: Path, tmp_path: Path) -> None:
    """kill -9 of one `sweep-worker` mid-trial: the other finishes exactly n_trials."""
    path = write_study(tmp_path, tiny_corpus, n_trials=4)
    study = load_study_config(path)
    victims: list[int] = []

    def kill_worker_mid_trial() -> bool:
        children = psutil.Process(run.proc.pid).children()
        if not children or not (tmp_path / "mlruns" / "optuna.db").exists():
            return False
        pids = {c.pid for c in children}
        # Read the study without creating it: the sweep must be the one that creates it.
        url = f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
        for t in optuna.load_study(study_name=study.name, storage=url).trials:
            owner = int(t.user_attrs.get("owner_pid", 0))
            if (
                t.state == TrialState.RUNNING
                and owner in pids
                and t.user_attrs.get("mlflow_run_id")
            ):
                os.kill(owner, signal.SIGKILL)
                victims.append(t.number)
                return True
        return False

    run = start(sweep(path, "--workers", "2", "--no-evaluate"))
    deadline = time.time() + 300
    while not victims and run.proc.poll() is None and time.time() < deadline:
        try:
            kill_worker_mid_trial()
        except (KeyError, sqlalchemy.exc.OperationalError):
            time.sleep(0.3)  # the sweep has not created the study yet
        time.sleep(0.3)
    assert run.wait() == 0, run.text
    assert victims, "no worker trial was caught running"
    assert "was killed by signal 9" in run.text
    _, opt, client = opened(path)
    counts = check_invariants(opt, client, n_trials=4)
    assert opt.trials[victims[0]].state == TrialState.FAIL
    print(f"two workers, one killed: {counts}")


#: The sweep's own trial never ends, so its worker is sure to take the other one.
MAIN_TRIAL_HANGS = """
import time
import nsynth_research.core.study as study
objective = study.objective
def hang_in_main(ctx, trial, worker=0):
    if worker == 0:
        time.sleep(3600)
    return objective(ctx, trial, worker)
study.objective = hang_in_main
"""


def test_the_workers_of_a_killed_sweep_stop_with_it(tiny_corpus: Path, tmp_path: Path) -> None:
    """kill -9 of the sweep itself while its worker trains: the worker stops too (its trial
    failed, its run closed) instead of training on for nobody; a rerun completes."""
    path = write_study(tmp_path, tiny_corpus, n_trials=2)
    url = f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    workers: list[psutil.Process] = []

    def worker_training() -> bool:
        if not (tmp_path / "mlruns" / "optuna.db").exists():
            return False  # reading must not create the store the sweep creates
        try:
            trials = optuna.load_study(study_name="faults", storage=url).trials
        except (KeyError, sqlalchemy.exc.SQLAlchemyError):
            return False  # not created yet, or busy
        workers[:] = psutil.Process(run.proc.pid).children()
        pids = {w.pid for w in workers}
        return any(
            t.state == TrialState.RUNNING
            and int(t.user_attrs.get("owner_pid", 0)) in pids
            and "mlflow_run_id" in t.user_attrs
            for t in trials
        )

    args = sweep(path, "--workers", "2", "--no-evaluate")
    run = start(args, patch=MAIN_TRIAL_HANGS, kill_when=worker_training)
    assert run.wait() == -signal.SIGKILL, run.text
    assert workers, "the sweep started no worker"
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"workers still running: {[w.pid for w in alive]}"
    client = open_store(TrackingConfig(store=tmp_path / "mlruns"))
    worker_runs = [r for r in study_runs(client) if r.data.tags.get("worker") == "1"]
    states = [(r.data.tags["state"], r.data.tags.get("error", "")) for r in worker_runs]
    assert [s for s, _ in states] == ["INTERRUPTED"], f"{states}\n{run.text}"
    resumed = start(sweep(path, "--no-evaluate"), patch=SHORT_GRACE)
    assert resumed.wait() == 0, resumed.text
    assert "trial 0 was left RUNNING by a dead worker" in resumed.text
    _, opt, client = opened(path)
    check_invariants(opt, client, n_trials=2)


def test_a_full_disk_mid_sweep_is_one_line_then_resumes(tiny_corpus: Path, tmp_path: Path) -> None:
    """ENOSPC while a trial logs its model: one `error:` line, exit 2, the trial, its run and
    the parent closed FAILED; freed, the study resumes."""
    path = write_study(tmp_path, tiny_corpus, n_trials=1)
    full = (
        "import errno, nsynth_research.core.task as task\n"
        "def full(*a, **k):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device', '/store/model')\n"
        "task.log_keras_model = full"
    )
    run = start(sweep(path), patch=full)
    assert run.wait() == 2, run.text
    assert "the disk is full" in one_error_line(run)
    assert "failed with" not in run.text  # no Optuna warning beside it
    client = open_store(TrackingConfig(store=tmp_path / "mlruns"))
    states = {r.info.run_name: r.info.status for r in study_runs(client)}
    assert states == {"study faults": "FAILED", "trial 0": "FAILED"}, states
    assert optuna_states(path) == [TrialState.FAIL]
    assert start(sweep(path)).wait() == 0
    _, opt, client = opened(path)
    check_invariants(opt, client, n_trials=1)


def test_a_full_disk_while_train_writes_its_model(tiny_corpus: Path, tmp_path: Path) -> None:
    store = tmp_path / "mlruns"
    full = (
        "import errno, mlflow.keras\n"
        "def full(*a, **k):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device', '/store/model')\n"
        "mlflow.keras.log_model = full"
    )
    run = start(train_args(tiny_corpus, store, epochs=1), patch=full)
    assert run.wait() == 2, run.text
    assert "the disk is full" in one_error_line(run)
    client = open_store(TrackingConfig(store=store))
    runs = client.search_runs([client.get_experiment_by_name("nsynth-train").experiment_id])
    assert [(r.info.status, r.data.tags["state"]) for r in runs] == [("FAILED", "FAILED")]


def train_args(corpus: Path, store: Path, epochs: int) -> list[str]:
    return [
        "train",
        "--config",
        str(REPO / "configs" / "baseline.yaml"),
        f"data.root={corpus}",
        f"tracking.store={store}",
        "model.filters=[8,8,16]",
        "model.dense=[16,16]",
        f"training.epochs={epochs}",
    ]


def test_a_killed_training_run_is_closed_by_the_next_command(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    store = tmp_path / "mlruns"
    killed = start(train_args(tiny_corpus, store, epochs=3), kill_on=r"Epoch 2/3")
    assert killed.wait() == -signal.SIGKILL, killed.text
    client = open_store(TrackingConfig(store=store))  # any command's first open of the store
    runs = client.search_runs([client.get_experiment_by_name("nsynth-train").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert f"pid {killed.proc.pid}" in runs[0].data.tags["error"]
    assert runs[0].data.tags["state"] == "FAILED"
