"""Measuring helpers of the large run (benchmarks/bench_large.py): machine load, peak memory
(with and without memory-mapped pages), bytes on disk."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path


def load_average() -> float:
    return os.getloadavg()[0]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """Peak anonymous resident memory of a process (RssAnon, sampled every `every` s): the
    heap, without the memory-mapped cache pages that peak RSS also counts (those the kernel
    drops under pressure, so peak RSS grows with free memory, not with what a run needs)."""

    def __init__(self, pid: int | str = "self", every: float = 0.5) -> None:
        self.status, self.every, self.mb = Path(f"/proc/{pid}/status"), every, 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(self.every):
            try:
                lines = self.status.read_text().splitlines()
            except OSError:
                return  # the process ended
            for line in lines:
                if line.startswith("RssAnon:"):
                    self.mb = max(self.mb, int(line.split()[1]) / 1024)

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return self.mb


def disk_bytes(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(e.stat().st_size for e in path.rglob("*") if e.is_file())
    return total
