"""What the pipeline benchmark records beside each timing, so a reader can tell noise from a
real regression: how busy the machine was, what each epoch cost the process, and whether a
contender's rounds split into two speeds.

Per timed call: wall seconds, the process's CPU seconds (user, system), minor page faults,
bytes read from the disk (not the page cache), the peak thread count (sampled every 5 ms),
the 1-minute load average at its start, and the cores other processes used meanwhile
(all busy CPU time on the machine minus this process's: the load average lags by a minute
and counts this benchmark itself, this does neither).
"""

from __future__ import annotations

import itertools
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot."""
    with open("/proc/stat") as handle:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, handle.readline().split()[1:9]
        )
    return (user + nice + system + irq + softirq + steal) / _TICK


def _own_seconds() -> float:
    with open("/proc/self/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _disk_read_bytes() -> int:
    with open("/proc/self/io") as handle:
        for line in handle:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


def _threads() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Call:
    """One timed call and what it cost."""

    wall: float
    user: float
    system: float
    faults: int
    disk_mb: float
    peak_threads: int
    load1: float
    others_cores: float


class Probe:
    """Wraps contenders so every call is recorded (warm-up calls included, first)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[Call]] = {}

    def wrap(self, name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def probed() -> Any:
            peak, stop = [_threads()], threading.Event()

            def sample() -> None:
                while not stop.wait(0.005):
                    peak[0] = max(peak[0], _threads())

            sampler = threading.Thread(target=sample, daemon=True)
            load1, busy, own = os.getloadavg()[0], _busy_seconds(), _own_seconds()
            usage, disk, start = resource.getrusage(resource.RUSAGE_SELF), _disk_read_bytes(), 0.0
            sampler.start()
            start = time.perf_counter()
            try:
                return fn()
            finally:
                wall = time.perf_counter() - start
                stop.set()
                sampler.join()
                after = resource.getrusage(resource.RUSAGE_SELF)
                others = (_busy_seconds() - busy) - (_own_seconds() - own)
                self.calls.setdefault(name, []).append(
                    Call(
                        wall=wall,
                        user=after.ru_utime - usage.ru_utime,
                        system=after.ru_stime - usage.ru_stime,
                        faults=after.ru_minflt - usage.ru_minflt,
                        disk_mb=(_disk_read_bytes() - disk) / 2**20,
                        peak_threads=peak[0] - 1,  # not counting the sampler itself
                        load1=load1,
                        others_cores=max(0.0, others / max(wall, 1e-9)),
                    )
                )

        return probed

    def timed(self, name: str, warmup: int = 1) -> list[Call]:
        return self.calls.get(name, [])[warmup:]

    def as_json(self, warmup: int = 1) -> dict[str, list[dict[str, Any]]]:
        return {name: [asdict(c) for c in self.timed(name, warmup)] for name in self.calls}


def median_of(calls: list[Call], field: str) -> float:
    return statistics.median(getattr(c, field) for c in calls) if calls else float("nan")


def clusters(samples: tuple[float, ...] | list[float]) -> str:
    """'one' unless the samples split into two groups: a gap between neighbours (sorted)
    wider than half the whole range, with the fastest at least 1.25x the slowest. Noise
    spreads samples out; a second mode leaves a hole. Then 'two: k at ~a, m at ~b'."""
    ordered = sorted(samples)
    if len(ordered) < 3 or ordered[-1] < 1.25 * ordered[0]:
        return "one"
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    at = max(range(len(gaps)), key=gaps.__getitem__)
    if gaps[at] <= 0.5 * (ordered[-1] - ordered[0]):
        return "one"
    low, high = ordered[: at + 1], ordered[at + 1 :]
    return (
        f"two: {len(low)} at ~{statistics.median(low):.0f}, "
        f"{len(high)} at ~{statistics.median(high):.0f}"
    )


def machine_state() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"load1": one, "load5": five, "load15": fifteen}


#: A study's trial as the machine sees it: the seed model training on in-memory batches,
#: both cores, until stopped. Prints "ready" once past start-up and its first epoch.
_TRIAL = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, numpy as np
from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.model import build_model
config = load_config()
cfg = config.features
model = build_model(config.model, cfg)
model.compile(optimizer=keras.optimizers.Adadelta(0.01),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x = np.random.default_rng(0).standard_normal((128, cfg.frames, cfg.bins, 1), np.float32)
y = np.arange(128) % 11
model.fit(x, y, batch_size=32, epochs=1, verbose=0)
print("ready", flush=True)
while True:
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
"""


@contextmanager
def study_beside() -> Iterator[None]:
    """Another process training a model on both cores for the duration, as a study's trial
    would beside a training run; started and past its first epoch before the block runs."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-c", _TRIAL], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    try:
        line = proc.stdout.readline() if proc.stdout else b""
        if b"ready" not in line:
            raise RuntimeError("the background trial did not start")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def syscalls_per_call(fn: Callable[[], Any], calls: int = 3) -> dict[str, float] | None:
    """Memory the allocator maps and unmaps per call of `fn` (`mmap`, `munmap` calls and the
    megabytes unmapped), traced by attaching `strace` to this process. None where strace is
    missing or may not attach."""
    if shutil.which("strace") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "trace")
        cmd = ["strace", "-f", "-qq", "-e", "trace=mmap,munmap", "-o", out]
        proc = subprocess.Popen(
            [*cmd, "-p", str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(2.0)  # attaching to every thread takes well under this
        if proc.poll() is not None:
            return None
        try:
            for _ in range(calls):
                fn()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        counts = {"mmap": 0.0, "munmap": 0.0, "unmapped_mb": 0.0}
        with open(out) as handle:
            for line in handle:
                call = _MAPPING.search(line)
                if call:
                    counts[call["name"]] += 1 / calls
                    if call["name"] == "munmap":
                        counts["unmapped_mb"] += int(call["size"]) / 2**20 / calls
        return counts


#: `mmap(NULL, 16384, ...)` or `munmap(0x7ff8..., 16384)` lines of an strace log.
_MAPPING = re.compile(r"\b(?P<name>mmap|munmap)\((?:NULL|0x[0-9a-f]+), (?P<size>\d+)")
