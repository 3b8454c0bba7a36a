"""Fault injection through the real command line: SIGKILL and SIGTERM at points of a trial,
of the evaluation, of one of two workers and of a single training run; each time the next
command must leave the study whole (`procs.check_invariants`)."""

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
from tests.core.procs import REPO, check_invariants, start, study_runs, write_study

pytestmark = pytest.mark.slow


def opened(path: Path):
    study = load_study_config(path)
    base = base_config(study, InstrumentConfig)
    return study, load_study(study, base, "maximize"), open_store(base.tracking)


def sweep(path: Path, *extra: str) -> list[str]:
    return ["sweep", "--experiment", str(path), *extra]


def test_kills_and_terms_at_every_stage_then_resume(tiny_corpus: Path, tmp_path: Path) -> None:
    path = write_study(tmp_path, tiny_corpus, n_trials=3)
    started = time.perf_counter()

    # SIGKILL mid-trial; the rerun comes at once, well inside the heartbeat grace period.
    killed = start(sweep(path), kill_on=r"trial 1 epoch 1/2")
    assert killed.wait() == -signal.SIGKILL, killed.text

    # The rerun fails the dead trial at once (same host, process gone) and says so; SIGTERM
    # mid-trial then ends it with one line and exit 143.
    termed = start(sweep(path), kill_on=r"trial 2 epoch 1/2", sig=signal.SIGTERM)
    assert termed.wait() == 143, termed.text
    assert "trial 1 was left RUNNING by a dead worker" in termed.text
    assert "interrupted by SIGTERM" in termed.text and "Traceback" not in termed.text

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
    _, opt, client = opened(path)
    # The killed evaluation had claimed the test split: it is never read a second time.
    counts = check_invariants(opt, client, n_trials=3)
    assert counts["test_reads"] <= 1
    states = [t.state for t in opt.trials]
    assert states.count(TrialState.FAIL) == 2, states  # the SIGKILLed and the SIGTERMed trial
    failed_runs = {
        r.data.tags.get("trial_number"): r.data.tags.get("error", "")
        for r in study_runs(client)
        if r.info.status == "FAILED"
    }
    assert "died" in failed_runs["1"]  # closed by the resume, with the reason
    assert "SIGTERM" in failed_runs["2"]
    evaluation_errors = [
        r.data.tags.get("error", "")
        for r in study_runs(client)
        if r.data.tags.get("role") == "evaluation" and r.info.status == "FAILED"
    ]
    assert len(evaluation_errors) == 1 and "died" in evaluation_errors[0]
    print(f"fault sequence: {counts}, {time.perf_counter() - started:.0f} s")


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
            if t.state == TrialState.RUNNING and owner in pids and t.user_attrs.get(
                "mlflow_run_id"
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


def test_a_killed_training_run_is_closed_by_the_next_command(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    store = tmp_path / "mlruns"
    args = [
        "train",
        "--config",
        str(REPO / "configs" / "baseline.yaml"),
        f"data.root={tiny_corpus}",
        f"tracking.store={store}",
        "model.filters=[8,8,16]",
        "model.dense=[16,16]",
        "training.epochs=3",
    ]
    killed = start(args, kill_on=r"Epoch 2/3")
    assert killed.wait() == -signal.SIGKILL, killed.text
    client = open_store(TrackingConfig(store=store))  # any command's first open of the store
    runs = client.search_runs([client.get_experiment_by_name("nsynth-train").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert f"pid {killed.proc.pid}" in runs[0].data.tags["error"]
    assert runs[0].data.tags["state"] == "FAILED"
