"""Browsing: the MLflow UI on this repo's store and optuna-dashboard on a study's storage,
both bound to loopback only.

Both start in seconds because nothing on this path imports TensorFlow or a task (the CLI
reads only config schemas), and MLflow's server runs one web worker and none of its GenAI
job consumers (each would import MLflow again on a 2-core machine). A port that is taken is
refused before anything starts, and a server that dies before answering is reported, so the
printed URL always points at the server this command started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.tracking import tracking_uri

HOST = "127.0.0.1"
#: Seconds a server may take to answer before we give up on it.
START_TIMEOUT = 120.0
#: MLflow 3 opens experiments in its GenAI mode; this query opens the run table instead.
RUN_TABLE = "runs?workflowType=machine_learning"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def check_port(port: int, make_var: str) -> None:
    """Refuse a port another process holds, before starting a server that would fail on it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            raise UserError(
                f"port {port} on {HOST} is already in use (another server?); stop it or pick "
                f"another port, e.g. make {make_var}={port + 1}"
            ) from None


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def ui_command(tracking: TrackingConfig, port: int) -> list[str]:
    """`mlflow ui` on the SQLite store with artifacts beside it (or on a remote URI)."""
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(tracking)]
    if not tracking.uri:
        artifacts = (Path(tracking.store).resolve() / "artifacts").as_uri()
        cmd += ["--default-artifact-root", artifacts]
    return [*cmd, "--host", HOST, "--port", str(port), "--workers", "1"]


def ui_environment() -> dict[str, str]:
    """No GenAI job runners: they add seven processes and nothing this project uses."""
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def ui_url(tracking: TrackingConfig, port: int, experiment: str) -> str:
    """The run table of `experiment` in Model-training mode, or the experiment list if the
    study has not logged anything yet."""
    from mlflow.tracking import MlflowClient

    base = f"http://{HOST}:{port}/"
    found = MlflowClient(tracking_uri(tracking)).get_experiment_by_name(experiment)
    if found is None:
        return base
    return f"{base}#/experiments/{found.experiment_id}/{RUN_TABLE}"


def dashboard_command(storage: str, port: int) -> list[str]:
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    return [str(dashboard), storage, "--host", HOST, "--port", str(port)]


def dashboard_url(storage: str, study: str, port: int) -> str:
    """The study's page in optuna-dashboard, or its study list while the study is new."""
    import optuna

    base = f"http://{HOST}:{port}/dashboard"
    try:
        study_id = optuna.storages.RDBStorage(storage).get_study_id_from_name(study)
    except KeyError:
        return base
    return f"{base}/studies/{study_id}"


def serve(cmd: list[str], what: str, url: str, port: int, env: dict[str, str] | None = None) -> int:
    """Run a server until Ctrl-C; print `url` once it answers, fail clearly if it dies first.

    The server gets its own process group, so Ctrl-C here stops it and every child it
    spawned (uvicorn workers), not only the launcher."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        while not answers(port):
            if proc.poll() is not None:
                raise UserError(
                    f"{what} exited with code {proc.returncode} before answering on port "
                    f"{port}; its messages are above"
                )
            if time.perf_counter() - start > START_TIMEOUT:
                raise UserError(f"{what} did not answer on port {port} in {START_TIMEOUT:.0f} s")
            time.sleep(0.2)
        took = time.perf_counter() - start
        print(f"{what} at {url}  (answered in {took:.1f} s; Ctrl-C stops it)", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
