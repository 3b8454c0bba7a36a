"""`make ui` / `make dashboard`: fast start without TensorFlow, the URL of the study's run
table, and a clear error (exit 2) when the port is taken or the server dies."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.tracking import experiment_id, open_store
from nsynth_research.serve import RUN_TABLE, check_port, free_port, serve, ui_url

REPO = Path(__file__).resolve().parents[1]


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


def test_the_ui_command_imports_no_tensorflow(tmp_path: Path) -> None:
    """The whole `ui` path up to starting the server, in a fresh interpreter."""
    script = (
        "import sys\n"
        "import nsynth_research.serve as s\n"
        "s.serve = lambda cmd, what, url, port, env=None: print(url) or 0\n"
        "from nsynth_research.cli import main\n"
        f"code = main(['ui', '--store', {str(tmp_path / 'mlruns')!r}, '--port', '0'])\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False False 0", out.stdout + out.stderr
