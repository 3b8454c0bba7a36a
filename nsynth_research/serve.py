"""Browsing: the MLflow UI on this repo's store and optuna-dashboard on a study's storage,
both bound to loopback only."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.tracking import tracking_uri

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ui_command(tracking: TrackingConfig, port: int) -> list[str]:
    """`mlflow ui` on the SQLite store with artifacts beside it (or on a remote URI)."""
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(tracking)]
    if not tracking.uri:
        artifacts = (Path(tracking.store).resolve() / "artifacts").as_uri()
        cmd += ["--default-artifact-root", artifacts]
    return [*cmd, "--host", HOST, "--port", str(port)]


def dashboard_command(storage: str, port: int) -> list[str]:
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    return [str(dashboard), storage, "--host", HOST, "--port", str(port)]
