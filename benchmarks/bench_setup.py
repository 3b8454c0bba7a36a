"""What a newcomer meets: a fresh clone, then the README's two commands, timed.

Clones the repository's committed HEAD into a temporary folder (so uncommitted work and the
local .venv, data and store play no part), runs `make sweep` there (environment creation,
corpus rendering, the default study and its test read) and then `make test`, and records
wall time, exit codes, load average before and after, and the sweep's summary lines.
Takes as long as both commands together; run it on a quiet machine.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import save, table

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    return time.perf_counter() - start, code


def tail_after(log: Path, marker: str) -> list[str]:
    """The summary the sweep prints last: its lines from the first one starting `marker`."""
    lines = log.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(marker)]
    return lines[starts[-1] :] if starts else []


def run() -> dict:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nsynth-fresh-") as tmp:
        clone = Path(tmp) / "nsynth-research"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True, check=True
        ).stdout.strip()
        env_cmd = ["env", "CI=true", "make"]
        sweep_s, sweep_rc = timed([*env_cmd, "sweep"], clone, Path(tmp) / "sweep.log")
        summary = tail_after(Path(tmp) / "sweep.log", "study ")
        test_s, test_rc = timed([*env_cmd, "test"], clone, Path(tmp) / "test.log")
        test_lines = (Path(tmp) / "test.log").read_text(errors="replace").splitlines()
        passed = next((line for line in reversed(test_lines) if " passed" in line), "")
        failed = [line for line in test_lines if line.startswith(("FAILED ", "ERROR "))]
    load_after = os.getloadavg()
    headers = ["command", "wall", "exit code"]
    rows = [
        ["make sweep (fresh clone: venv, corpus, study, test read)", _minutes(sweep_s), sweep_rc],
        [f"make test ({passed.strip('= ')})", _minutes(test_s), test_rc],
    ]
    print(table(headers, rows))
    print("\n".join(summary + failed))
    save(
        "setup",
        {
            "commit": commit,
            "cores": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
            "sweep_seconds": sweep_s,
            "sweep_exit": sweep_rc,
            "sweep_summary": summary,
            "test_seconds": test_s,
            "test_exit": test_rc,
            "tests": passed,
            "failed_tests": failed,
        },
        tables={"commands": (headers, rows)},
    )
    return {"sweep_seconds": sweep_s, "test_seconds": test_s}


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
