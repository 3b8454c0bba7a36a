"""Command-line runs as real processes, killed at chosen points, and the invariants a study
must keep whatever was killed (shared by the fault and scale-out suites)."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[2]


def write_study(
    folder: Path, corpus: Path, n_trials: int, storage_overrides: dict | None = None
) -> Path:
    """A tiny study whose search space has a continuous dimension, so two trials can only
    share parameters if the sampler replays a stream (which is what a restart used to do)."""
    body = {
        "name": "faults",
        "base_config": str(REPO / "configs" / "baseline.yaml"),
        "overrides": {
            "data.root": str(corpus),
            "data.corpus": None,
            "tracking.store": str(folder / "mlruns"),
            "tracking.log_model": True,
            "figures.tsne": False,
            "model.filters": [8, 8, 16],
            "model.dense": [16, 16],
            "training.epochs": 2,
            **(storage_overrides or {}),
        },
        "n_trials": n_trials,
        "sampler": {"name": "random", "seed": 3},
        "pruner": {"name": "none"},
        "enqueue_baseline": True,
        "bootstrap": 100,
        "search_space": {
            "optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.4},
        },
    }
    path = folder / "faults.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@dataclass
class Run:
    """One CLI process; `lines` fills as it prints (stdout and stderr together)."""

    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    killed_at: str = ""

    def wait(self, timeout: float = 600) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def wait_for(self, pattern: str, timeout: float = 600) -> bool:
        """Block until a line matches `pattern` (True) or the process ends first (False)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(re.search(pattern, line) for line in list(self.lines)):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    @property
    def text(self) -> str:
        return "".join(self.lines)


#: `python -c` program that runs Python lines (a fault injected into the real code), then the
#: command line with the process's arguments.
PATCHED = "import sys\n{patch}\nfrom nsynth_research.cli import main\nraise SystemExit(main())"


#: A shorter heartbeat grace for a command that must reap a trial whose owner it cannot check
#: (a hung or killed process that never tagged itself): the reaping is what is tested, not
#: how long the production grace (a minute) waits.
SHORT_GRACE = """
import nsynth_research.core.storage as storage
storage.HEARTBEAT, storage.GRACE = 1, 4
"""


def start(
    args: list[str],
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
    kill_on: str | None = None,
    sig: int = signal.SIGKILL,
    kill_when: Callable[[], bool] | None = None,
    patch: str = "",
    prefix: tuple[str, ...] = (),
) -> Run:
    """Start `python -m nsynth_research <args>`; send `sig` at the first line matching
    `kill_on`, or as soon as `kill_when()` turns true (polled). `patch` is Python run first
    in the process (to inject a fault); `prefix` a command that runs it (e.g. `unshare`)."""
    program = ["-c", PATCHED.format(patch=patch)] if patch else ["-m", "nsynth_research"]
    proc = subprocess.Popen(
        [*prefix, sys.executable, *program, *args],
        cwd=cwd,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = Run(proc)

    def kill(why: str) -> None:
        if not run.killed_at and proc.poll() is None:
            run.killed_at = why
            proc.send_signal(sig)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            run.lines.append(line)
            if kill_on and re.search(kill_on, line):
                kill(line.strip())

    run._reader = threading.Thread(target=read, daemon=True)  # type: ignore[attr-defined]
    run._reader.start()  # type: ignore[attr-defined]
    if kill_when is not None:

        def poll() -> None:
            while proc.poll() is None and not run.killed_at:
                try:
                    if kill_when():
                        kill("condition")
                except (MlflowException, sqlalchemy.exc.OperationalError):
                    time.sleep(0.2)  # the store is busy or not yet created: look again
                time.sleep(0.2)

        threading.Thread(target=poll, daemon=True).start()
    return run


def one_error_line(run: Run) -> str:
    """The command's single `error:` line; it printed no traceback and no other error."""
    errors = [line for line in run.lines if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in run.text, run.text
    return errors[0]


def study_runs(client: MlflowClient, experiment: str = "study-faults") -> list:
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def check_invariants(opt, client: MlflowClient, n_trials: int) -> dict[str, int]:
    """The fault-suite invariants (README "What survives a crash"); returns counts."""
    trials = opt.get_trials()
    states = [t.state for t in trials]
    running = [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not running, f"trials left RUNNING: {running}"
    finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    assert finished == n_trials, f"{finished} finished trials for n_trials {n_trials}: {states}"
    params = [tuple(sorted(t.params.items())) for t in trials if t.params]
    assert len(params) == len(set(params)), f"repeated parameter sets: {params}"

    runs = study_runs(client)
    left = [(r.info.run_name, r.info.status) for r in runs if r.info.status == "RUNNING"]
    assert not left, f"MLflow runs left RUNNING: {left}"
    parents = [r for r in runs if r.data.tags.get("role") == "study"]
    assert len(parents) == 1, f"{len(parents)} parent runs"
    trial_runs = [r for r in runs if "trial_number" in r.data.tags]
    by_id = {t.user_attrs.get("mlflow_run_id"): t for t in trials}
    status = {
        TrialState.COMPLETE: "FINISHED",
        TrialState.PRUNED: "KILLED",
        TrialState.FAIL: "FAILED",
    }
    for r in trial_runs:
        t = by_id.get(r.info.run_id)
        assert t is not None, f"run {r.info.run_name} belongs to no trial"
        assert r.data.tags["trial_number"] == str(t.number)
        assert r.info.status == status[t.state], f"trial {t.number} {t.state} vs {r.info.status}"
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        for key, value in t.params.items():
            # A run killed before it logged its config has no params; any it has must match.
            if t.state != TrialState.FAIL or key in r.data.params:
                # Logged values are the config's, with float noise of stepped spaces rounded.
                logged = float(r.data.params[key])
                assert math.isclose(logged, value, rel_tol=1e-9), f"trial {t.number} {key}"
    # A completed test read is an evaluation run that logged test metrics.
    reads = [
        r
        for r in runs
        if r.data.tags.get("role") == "evaluation"
        and r.info.status == "FINISHED"
        and "test_accuracy" in r.data.metrics
    ]
    assert len(reads) <= 1, f"the test split was read {len(reads)} times"
    return {
        "trials": len(trials),
        "finished": finished,
        "failed": states.count(TrialState.FAIL),
        "trial_runs": len(trial_runs),
        "test_reads": len(reads),
    }


def race_claims(url: str, study: str, racers: int = 6) -> tuple[list[Any], list[int]]:
    """`racers` threads, each with its own storage connection as separate machines would
    have, claim the test read of `study` at the same instant: (claims won, racers lost)."""
    from nsynth_research.core.orchestration import ClaimLost, claim_test_read
    from nsynth_research.core.storage import open_storage

    start_line = threading.Barrier(racers)
    won: list[Any] = []
    lost: list[int] = []

    def claim(i: int) -> None:
        storage = open_storage(url)
        start_line.wait()
        try:
            won.append(claim_test_read(storage, study, f"run-{i}", force=False))
        except ClaimLost:
            lost.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, lost
