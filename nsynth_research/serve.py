"""Browsing: the MLflow UI on this repo's store and optuna-dashboard on a study's storage,
both bound to loopback only.

Both start in seconds because nothing on this path imports TensorFlow or a task (the CLI
reads only config schemas). The MLflow UI runs inside the command's own process: MLflow's
ASGI app under uvicorn, one worker, none of its GenAI job consumers, so MLflow is imported
once, not three times (`mlflow ui` would start a process that starts uvicorn in another),
and nothing outlives the command. optuna-dashboard runs as a child that dies with it (Linux
PR_SET_PDEATHSIG, and a hang-up or SIGTERM of the command stops it first). A port that is
taken is refused before anything starts, and a server that dies before answering is
reported, so the printed URL always points at the server this command started.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.errors import UserError

HOST = "127.0.0.1"
#: When the command reached this module, just after parsing its arguments.
LOADED = time.perf_counter()
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


#: MLflow settings of the UI server: no GenAI job runners (seven processes, nothing this
#: project uses) and no AI Gateway (a GenAI page in the sidebar). The Assistant panel and the
#: GenAI/Model-training switch have no server setting (docs/tracking.md).
UI_SETTINGS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_ENABLE_AI_GATEWAY": "false"}


def ui_environment(tracking: TrackingConfig) -> dict[str, str]:
    """What `mlflow server` would hand its uvicorn worker: the stores (the SQLite file with
    its artifacts beside it, or a remote URI), artifacts served through the UI, and
    `UI_SETTINGS`."""
    from mlflow.server import constants as server

    from nsynth_research.core.tracking import tracking_uri

    uri = tracking_uri(tracking)
    env = {
        **UI_SETTINGS,
        server.BACKEND_STORE_URI_ENV_VAR: uri,
        server.REGISTRY_STORE_URI_ENV_VAR: uri,
        server.SERVE_ARTIFACTS_ENV_VAR: "true",
    }
    if not tracking.uri:
        artifacts = (Path(tracking.store).resolve() / "artifacts").as_uri()
        env[server.ARTIFACT_ROOT_ENV_VAR] = artifacts
        env[server.ARTIFACTS_DESTINATION_ENV_VAR] = artifacts
    return env


def serve_ui(tracking: TrackingConfig, port: int, url: str) -> int:
    """The MLflow UI in this process until Ctrl-C or SIGTERM (a hang-up or SIGKILL ends it
    with the process): print `url` once it answers, fail clearly if it cannot start."""
    import uvicorn  # first: MLflow's app checks whether it runs under a server as it loads

    os.environ.update(ui_environment(tracking))
    import mlflow.server
    from mlflow.server.fastapi_app import app
    from mlflow.server.handlers import initialize_backend_stores

    env = os.environ
    initialize_backend_stores(
        env[mlflow.server.BACKEND_STORE_URI_ENV_VAR],
        env[mlflow.server.REGISTRY_STORE_URI_ENV_VAR],
        env.get(mlflow.server.ARTIFACT_ROOT_ENV_VAR),
    )
    # The command's own logging prints uvicorn's lines once; no line for each of the many
    # requests a page makes.
    server = uvicorn.Server(
        uvicorn.Config(app, host=HOST, port=port, log_config=None, access_log=False, workers=1)
    )

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            took = time.perf_counter() - LOADED
            print(f"MLflow UI at {url}  (answered in {took:.1f} s; Ctrl-C stops it)", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on
        return 0
    finally:
        server.should_exit = True
    if not server.started:
        raise UserError(f"the MLflow UI could not start on port {port}; its messages are above")
    return 0


def ui_url(tracking: TrackingConfig, port: int, experiment: str) -> str:
    """The run table of `experiment` in Model-training mode, or the experiment list if the
    study has not logged anything yet."""
    from mlflow.tracking import MlflowClient

    from nsynth_research.core.tracking import tracking_uri

    base = f"http://{HOST}:{port}/"
    found = MlflowClient(tracking_uri(tracking)).get_experiment_by_name(experiment)
    if found is None:
        return base
    return f"{base}#/experiments/{found.experiment_id}/{RUN_TABLE}"


#: Environment variable that hands optuna-dashboard its storage URL: a command line is
#: visible to every local user (`ps`), a process's environment only to its owner.
DASHBOARD_STORAGE_ENV = "NSYNTH_DASHBOARD_STORAGE"
#: optuna-dashboard's own entry point, given the storage from the environment.
_DASHBOARD_MAIN = (
    "import os, sys; from optuna_dashboard._cli import main; "
    f"sys.argv[1:1] = [os.environ.pop({DASHBOARD_STORAGE_ENV!r})]; main()"
)


def dashboard_command(port: int) -> list[str]:
    """optuna-dashboard, its storage URL left off the command line (see
    `dashboard_environment`)."""
    return [sys.executable, "-c", _DASHBOARD_MAIN, "--host", HOST, "--port", str(port)]


def dashboard_environment(storage: str) -> dict[str, str]:
    return {**os.environ, DASHBOARD_STORAGE_ENV: storage}


def dashboard_url(storage: str, study: str, port: int) -> str:
    """The study's page in optuna-dashboard, or its study list while the study is new."""
    import optuna

    base = f"http://{HOST}:{port}/dashboard"
    try:
        study_id = optuna.storages.RDBStorage(storage).get_study_id_from_name(study)
    except KeyError:
        return base
    return f"{base}/studies/{study_id}"


#: prctl(2) option: the signal a process gets when the thread that started it exits.
PR_SET_PDEATHSIG = 1
#: Signals that stop the launcher and, through `serve`'s clean-up, its server.
STOPS = (signal.SIGHUP, signal.SIGTERM)


def _dies_with(parent: int) -> Callable[[], None]:
    """A `preexec_fn` making the child receive SIGTERM when `parent` dies, however it dies
    (SIGKILL included): Linux's PR_SET_PDEATHSIG. A parent gone before the call ends it."""

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(cmd: list[str], what: str, url: str, port: int, env: dict[str, str] | None = None) -> int:
    """Run a server until Ctrl-C; print `url` once it answers, fail clearly if it dies first.

    The server gets its own process group, so Ctrl-C here stops it and every child it
    spawned, not only the launcher; a hang-up or SIGTERM of the launcher stops it the same
    way, and a SIGKILLed launcher takes it along (`_dies_with`)."""
    start = time.perf_counter()
    previous = {s: signal.signal(s, _stop) for s in STOPS}
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, preexec_fn=_dies_with(os.getpid())
    )
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
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc.poll() is None:
            stop_group(proc, grace=10)


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group `proc` leads (a server and the workers it started), then
    SIGKILL it if it has not ended within `grace` seconds."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
