"""Worker processes: starting a study's workers on this machine, sharing its cores, and
telling which process owns a run or a trial and whether that process still exists.

A process killed with SIGKILL cannot close its own MLflow run or Optuna trial. Recording the
owner (host, pid and the pid's start time, so a recycled pid is not mistaken for it) lets the
next command on the same host close what the dead process left RUNNING at once, instead of
waiting for a heartbeat to go stale. Other hosts' processes cannot be seen from here: their
trials rely on the heartbeat alone. A worker also watches the sweep that started it, and
stops (as on SIGTERM: its trial failed, its run closed) once that sweep is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

#: Seconds between a worker's checks that the sweep which started it still runs.
WATCH_INTERVAL = 1.0
#: Environment variable naming the sweep that started a worker: "<pid> <start time>".
SWEEP_ENV = "NSYNTH_SWEEP_PROCESS"
#: Two start times closer than this are the same process (they come from one clock).
SAME_START = 0.05


def start_time(pid: int) -> float | None:
    """When the process started (seconds since the epoch), None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return None


def _recorded_start(started: str) -> float | None:
    """A recorded start time: epoch seconds, or Linux clock ticks since boot (older tags)."""
    try:
        value = float(started)
    except ValueError:
        return None
    if "." in started:
        return value
    return psutil.boot_time() + value / os.sysconf("SC_CLK_TCK")


def alive(pid: int, started: str = "") -> bool:
    """Whether `pid` runs on this host and, when `started` is known, is the process that
    started then (not a recycled pid); a zombie (killed, not yet reaped) is not alive."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        now = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # exists, owned by another user
    then = _recorded_start(started) if started else None
    return then is None or abs(now - then) < SAME_START


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str

    @classmethod
    def me(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), repr(start_time(os.getpid()) or 0.0))

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
        return self.here() and not alive(self.pid, self.started)

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
        me = Owner.me()
        env = {**os.environ, SWEEP_ENV: f"{me.pid} {me.started}"}
        procs.append(subprocess.Popen([*cmd, *overrides], env=env))
    return procs


def stop_with_parent(interval: float = WATCH_INTERVAL) -> None:
    """SIGTERM this process once the sweep that started it is gone (a sweep killed with
    SIGKILL cannot stop its workers itself). SIGTERM, not an exit: the worker's handler fails
    its trial and closes its run on the way out, as when the sweep stops it. The sweep is
    named by SWEEP_ENV (pid and start time), so a worker whose sweep died before this call
    (and that was handed to another parent) still knows it is orphaned."""
    named = os.environ.get(SWEEP_ENV, "").split()
    parent, started = (int(named[0]), named[1]) if len(named) == 2 else (os.getppid(), "")

    def watch() -> None:
        while alive(parent, started):
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def limit_threads(workers: int) -> None:
    """Split the machine's cores between worker processes instead of oversubscribing them."""
    import tensorflow as tf

    threads = max(1, (os.cpu_count() or 1) // workers)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(2, threads))
