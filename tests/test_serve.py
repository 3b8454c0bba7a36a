"""The MLflow UI serves this project's store: start it on a free loopback port, fetch the
runs through its REST API, stop it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.tracking import tracked_run
from nsynth_research.serve import free_port, ui_command


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_ui_lists_the_logged_runs(tmp_path: Path) -> None:
    tracking = TrackingConfig(store=tmp_path / "mlruns", experiment="ui-test")
    with tracked_run(tracking, run_name="served run") as run:
        mlflow.log_metric("val_accuracy", 0.5, step=0)
    port = free_port()
    proc = subprocess.Popen(
        ui_command(tracking, port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                found = post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                assert time.time() < deadline, "MLflow UI did not answer within 90 s"
                time.sleep(0.5)
        names = {e["name"]: e["experiment_id"] for e in found["experiments"]}
        assert "ui-test" in names
        runs = post(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [names["ui-test"]]})
        (served,) = runs["runs"]
        assert served["info"]["run_id"] == run.info.run_id
        assert served["info"]["status"] == "FINISHED"
        assert {m["key"]: m["value"] for m in served["data"]["metrics"]} == {"val_accuracy": 0.5}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
