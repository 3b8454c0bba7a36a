"""`make ui` start-up while another study trains on the same 2 cores (issue 22: answer within
15 s): seconds from starting the command to the first HTTP answer of its server.

The contention is a real small training job (the baseline CNN on the default corpus, a
temporary store) started first and kept running through every round. Contenders, 5
interleaved rounds after one untimed start each: `make ui` as the project runs it (MLflow's
app in the command's own process), and, for reference, MLflow's own `mlflow ui` command (a
CLI process that starts uvicorn in another). Both serve a copy of the repo's store.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import DATA_ROOT, interleaved, markdown, save, table
from nsynth_research.serve import HOST, free_port, stop_group

STORE = Path("mlruns")
#: A training job that outlasts the rounds: the baseline on part of the default corpus.
TRAIN = [
    "train",
    "--config",
    "configs/baseline.yaml",
    f"data.root={DATA_ROOT}",
    "data.max_notes_per_split=600",
    "training.epochs=500",
    "training.early_stopping_patience=null",
]
TIMEOUT = 120.0


def _first_answer(cmd: list[str], port: int, env: dict[str, str]) -> float:
    """Seconds from starting `cmd` to the first HTTP answer on `port`; then stops it."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.perf_counter() - start < TIMEOUT:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[:4]} exited with {proc.returncode} before answering")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=1):
                    return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{cmd[:4]} did not answer in {TIMEOUT:.0f} s")
    finally:
        stop_group(proc, grace=20)


def run() -> dict:
    before = list(os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    store = work / "mlruns"
    shutil.copytree(STORE, store)
    db, artifacts = (store / "mlflow.db").resolve(), (store / "artifacts").resolve()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cli = [sys.executable, "-m", "nsynth_research"]
    trainer_cmd = [*cli, *TRAIN, f"tracking.store={work / 'train-store'}"]
    trainer = subprocess.Popen(
        trainer_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(30)  # past its start-up: the rounds meet it training

    def busy() -> None:
        if trainer.poll() is not None:
            raise RuntimeError(f"the training job ended ({trainer.returncode}): no contention")

    def make_ui() -> float:
        busy()
        port = free_port()
        return _first_answer([*cli, "ui", "--store", str(store), "--port", str(port)], port, env)

    def mlflow_ui() -> float:
        busy()
        port = free_port()
        cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{db}",
               "--default-artifact-root", artifacts.as_uri(), "--host", HOST,
               "--port", str(port), "--workers", "1"]  # fmt: skip
        return _first_answer(cmd, port, {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})

    contenders = {"make ui (one process)": make_ui, "mlflow ui (MLflow's CLI)": mlflow_ui}
    try:
        rates = interleaved(contenders, work=1.0, self_timed=True)
        busy()
    finally:
        trainer.terminate()
        trainer.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    seconds = {name: sorted(1.0 / r for r in m.samples) for name, m in rates.items()}
    headers = ["command", "median s", "range s", "runs", "under 15 s"]
    rows = [
        [
            name,
            statistics.median(s),
            f"{s[0]:.1f}-{s[-1]:.1f}",
            len(s),
            f"{sum(x < 15 for x in s)}/{len(s)}",
        ]
        for name, s in seconds.items()
    ]
    print(table(headers, rows))
    print(markdown(headers, rows))
    payload = {
        "contention": " ".join(TRAIN),
        "load_average_before_after": [before, list(os.getloadavg())],
        "seconds": seconds,
        "rates": {name: m.as_json() for name, m in rates.items()},
    }
    save("ui", payload, tables={"startup": (headers, rows)})
    return payload
