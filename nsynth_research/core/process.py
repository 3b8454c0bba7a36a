"""Worker processes: starting a study's workers on this machine, sharing its cores, and
telling which process owns a run or a trial and whether that process still exists.

A process killed with SIGKILL cannot close its own MLflow run or Optuna trial. Recording the
owner (host, pid and the pid's start time, so a recycled pid is not mistaken for it) lets the
next command on the same host close what the dead process left RUNNING at once, instead of
waiting for a heartbeat to go stale. Other hosts' processes cannot be seen from here: their
trials rely on the heartbeat alone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def _start_ticks(pid: int) -> str:
    """The pid's start time in clock ticks since boot (Linux); '' where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22 counts after the command name, which may itself hold spaces or parentheses.
    return stat.rsplit(")", 1)[1].split()[19]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str

    @classmethod
    def me(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), _start_ticks(os.getpid()))

    def tags(self) -> dict[str, str]:
        return {"owner_host": self.host, "owner_pid": str(self.pid), "owner_started": self.started}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Owner | None:
        """The owner recorded by `tags()`, or None for runs and trials that predate owners."""
        try:
            return cls(tags["owner_host"], int(tags["owner_pid"]), tags.get("owner_started", ""))
        except (KeyError, ValueError):
            return None

    def here(self) -> bool:
        return self.host == socket.gethostname()

    def gone(self) -> bool:
        """True only when this host can tell for sure that the owner no longer runs."""
        if not self.here():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # exists, owned by another user
        if _zombie(self.pid):
            return True  # killed, not yet reaped by its parent
        now = _start_ticks(self.pid)
        return bool(self.started and now and now != self.started)

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


def spawn_workers(
    experiment_path: Path, workers: int, deadline: float | None, overrides: list[str]
) -> list[subprocess.Popen]:
    """Start workers 1..n-1 as processes beside this one, all on the same study storage."""
    procs = []
    for worker in range(1, workers):
        cmd = [
            sys.executable,
            "-m",
            "nsynth_research",
            "sweep-worker",
            "--experiment",
            str(experiment_path),
            "--worker",
            str(worker),
            "--workers",
            str(workers),
        ]
        if deadline is not None:
            cmd += ["--deadline", repr(deadline)]
        procs.append(subprocess.Popen([*cmd, *overrides]))
    return procs


def limit_threads(workers: int) -> None:
    """Split the machine's cores between worker processes instead of oversubscribing them."""
    import tensorflow as tf

    threads = max(1, (os.cpu_count() or 1) // workers)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(2, threads))
