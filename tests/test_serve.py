"""`make ui` / `make dashboard`: fast start without TensorFlow (MLflow loaded once), the URL
of the study's run table, a clear error (exit 2) when the port is taken or the server dies,
the GenAI leftovers MLflow has settings for switched off, and no server outliving the
command that started it, however that command ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.tracking import experiment_id, open_store
from nsynth_research.serve import (
    RUN_TABLE,
    answers,
    check_port,
    free_port,
    serve,
    ui_environment,
    ui_url,
)

REPO = Path(__file__).resolve().parents[1]
#: A stand-in server: listens on the port given, prints its pid, serves nothing.
FAKE_SERVER = (
    "import os, socket, sys, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "print('server', os.getpid(), flush=True)\n"
    "time.sleep(600)\n"
)
#: A launcher: `serve` running the stand-in, as `make dashboard` runs optuna-dashboard.
LAUNCHER = (
    "import sys\n"
    "from nsynth_research.serve import serve\n"
    "port = int(sys.argv[1])\n"
    "cmd = [sys.executable, '-c', sys.argv[2], str(port)]\n"
    "serve(cmd, 'fake', 'http://127.0.0.1/', port)\n"
)


def test_a_taken_port_is_refused_with_the_make_variable() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} .* in use.*make ui PORT={port + 1}"):
            check_port(port, "ui PORT")


def test_a_server_dying_before_it_answers_is_an_error() -> None:
    cmd = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(UserError, match="exited with code 3 before answering"):
        serve(cmd, "fake server", "http://127.0.0.1/", free_port())


def test_the_url_lands_on_the_study_run_table(tmp_path: Path) -> None:
    tracking = TrackingConfig(store=tmp_path / "mlruns")
    assert ui_url(tracking, 5000, "study-new") == "http://127.0.0.1:5000/"
    exp = experiment_id(tracking, open_store(tracking), "study-default")
    url = ui_url(tracking, 5000, "study-default")
    assert url == f"http://127.0.0.1:5000/#/experiments/{exp}/{RUN_TABLE}"
    assert url.endswith("runs?workflowType=machine_learning")


def test_the_ui_server_gets_the_store_and_no_genai_extras(tmp_path: Path) -> None:
    from mlflow.server import constants

    tracking = TrackingConfig(store=tmp_path / "mlruns")
    env = ui_environment(tracking)
    db = (tmp_path / "mlruns" / "mlflow.db").resolve()
    assert env[constants.BACKEND_STORE_URI_ENV_VAR] == f"sqlite:///{db}"
    assert env[constants.REGISTRY_STORE_URI_ENV_VAR] == f"sqlite:///{db}"
    assert env[constants.ARTIFACT_ROOT_ENV_VAR] == (tmp_path / "mlruns" / "artifacts").as_uri()
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_ENABLE_AI_GATEWAY"] == "false"


def test_the_ui_command_imports_no_tensorflow_and_mlflow_once(tmp_path: Path) -> None:
    """The whole `ui` path up to starting the server, in a fresh interpreter: it runs in the
    command's own process (no `mlflow ui` process, no uvicorn worker process)."""
    script = (
        "import sys, subprocess\n"
        "import nsynth_research.serve as s\n"
        "s.serve_ui = lambda tracking, port, url: print(url) or 0\n"
        "started, popen = [], subprocess.Popen.__init__\n"
        "def record(self, args, *a, **k):\n"
        "    started.append(str(args))\n"
        "    popen(self, args, *a, **k)\n"
        "subprocess.Popen.__init__ = record\n"
        "from nsynth_research.cli import main\n"
        f"code = main(['ui', '--store', {str(tmp_path / 'mlruns')!r}, '--port', '0'])\n"
        "servers = [a for a in started if 'mlflow' in a or 'uvicorn' in a]\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, servers, code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False False [] 0", out.stdout + out.stderr


def _launch(port: int) -> tuple[subprocess.Popen, int]:
    """A launcher serving the stand-in on `port`, and the stand-in's pid once it listens."""
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(port), FAKE_SERVER],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = launcher.stdout.readline()  # type: ignore[union-attr]
    assert line.startswith("server "), line
    return launcher, int(line.split()[1])


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", [signal.SIGHUP, signal.SIGTERM, signal.SIGKILL])
def test_the_server_does_not_outlive_its_launcher(how: signal.Signals) -> None:
    """A closed terminal (SIGHUP), a `kill` (SIGTERM) or a SIGKILL of the launcher takes its
    server along and frees the port (the server runs in its own session, so it would
    otherwise get none of those signals)."""
    port = free_port()
    launcher, server = _launch(port)
    try:
        assert answers(port)
        launcher.send_signal(how)
        launcher.wait(timeout=10)
        assert _gone(server), f"server {server} outlived its launcher ({how.name})"
        assert not answers(port)
    finally:
        for pid in (launcher.pid, server):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def hangups_heard() -> None:
    """A terminal's hang-up ends the command, as it does in a shell; a suite started under
    `nohup` would otherwise hand its SIGHUP-ignoring disposition down to the command."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("how", [signal.SIGHUP, signal.SIGKILL])
def test_the_mlflow_ui_dies_with_its_command(tmp_path: Path, how: signal.Signals) -> None:
    """The real `ui` command: the port answers, then is free once the command is gone."""
    port = free_port()
    cmd = [sys.executable, "-m", "nsynth_research", "ui", "--store", str(tmp_path / "mlruns")]
    ui = subprocess.Popen(
        [*cmd, "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=hangups_heard,
    )
    try:
        line = ui.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("MLflow UI at http://127.0.0.1:"), line
        assert answers(port)
        ui.send_signal(how)
        ui.wait(timeout=20)
        deadline = time.monotonic() + 10
        while answers(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not answers(port)
    finally:
        if ui.poll() is None:
            ui.kill()
