"""Many machines, one study, for real: a PostgreSQL server (pgserver, no root) holds the study,
an `mlflow server` on 127.0.0.1 with that database as backend tracks the runs, and two
workers start from two separate copies of the repository, configured only by environment
variables, exactly as the README tells a lab to run it. One is killed -9 mid-trial and
resumed; the study still ends with exactly n_trials distinct trials, one parent run and one
test evaluation, and no password reaches the tracking store. Test-read claims are atomic on
PostgreSQL too and never listed as studies; a password in either place a URL can carry it
reaches no store, artifact or command line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import psutil
import pytest
import sqlalchemy
import yaml
from mlflow.tracking import MlflowClient

from nsynth_research.core.orchestration import claimed_reads
from nsynth_research.core.storage import open_storage
from tests.core.procs import REPO, check_invariants, race_claims, start, study_runs, write_study

pytestmark = pytest.mark.slow
PASSWORD = "lab-s3cret"


DATABASES = ("optuna", "mlflow", "userinfo", "query", "socket")


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    pgserver = pytest.importorskip("pgserver")
    # Not under pytest's tmp folders (mode 0700): run as root, pgserver starts PostgreSQL as
    # an unprivileged user, which must reach its data folder.
    data = Path(tempfile.mkdtemp(prefix="nsynth-pgdata-"))
    data.chmod(0o755)
    server = pgserver.get_server(data, cleanup_mode="stop")
    for db in DATABASES:
        server.psql(f"CREATE DATABASE {db};")
    # Local socket connections are trusted, so the password is never checked; it is here
    # to prove that it never reaches a logged param or tag.
    socket_dir = server.get_uri().split("host=")[1]
    url = f"postgresql+psycopg2://postgres:{PASSWORD}@/{{db}}?host={socket_dir}"
    urls = {db: url.format(db=db) for db in DATABASES}
    # The same password in the query string, and the socket URL with no password at all.
    urls["query"] = f"postgresql+psycopg2://postgres@/query?host={socket_dir}&password={PASSWORD}"
    urls["socket"] = f"postgresql+psycopg2://postgres@/socket?host={socket_dir}"
    yield urls
    server.cleanup()
    shutil.rmtree(data, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(
    postgres: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    artifacts = tmp_path_factory.mktemp("artifacts")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--artifacts-destination", str(artifacts),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        # The database URL holds the password: through the environment, off the command line.
        env={**os.environ, "MLFLOW_BACKEND_STORE_URI": postgres["mlflow"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            assert proc.poll() is None and time.time() < deadline, "mlflow server did not start"
            time.sleep(0.5)
    yield uri
    proc.terminate()
    proc.wait(30)


def working_copy(dest: Path) -> Path:
    """The repository as a second machine would check it out (no venv, stores or data)."""
    top = {".git", ".venv", "mlruns", "data", "docs", "benchmarks"}

    def skip(folder: str, names: list[str]) -> list[str]:
        here = Path(folder) == REPO
        return [n for n in names if (here and n in top) or n == "__pycache__" or "egg-info" in n]

    shutil.copytree(REPO, dest, ignore=skip)
    return dest


def test_two_machines_one_study_with_a_kill(
    tiny_corpus: Path, tmp_path: Path, postgres: dict[str, str], mlflow_server: str
) -> None:
    machines = [working_copy(tmp_path / name) for name in ("machine-a", "machine-b")]
    env = {"NSYNTH_STORAGE": postgres["optuna"], "NSYNTH_TRACKING_URI": mlflow_server}
    paths = [write_study(m, tiny_corpus, n_trials=4) for m in machines]
    started = time.perf_counter()

    def sweep(machine: int, **kill: object):
        args = ["sweep", "--experiment", str(paths[machine])]
        return start(args, cwd=machines[machine], env=env, **kill)  # type: ignore[arg-type]

    a = sweep(0)
    b = sweep(1, kill_on=r"trial \d+ epoch 1/2", sig=signal.SIGKILL)
    assert b.wait() == -signal.SIGKILL, b.text
    assert a.wait() == 0, a.text
    resumed = sweep(1)
    assert resumed.wait() == 0, resumed.text
    wall = time.perf_counter() - started

    assert "evaluation run" in a.text  # the machine that finished the study evaluated it

    opt = optuna.load_study(study_name="faults", storage=postgres["optuna"])
    client = MlflowClient(mlflow_server)
    counts = check_invariants(opt, client, n_trials=4)
    assert counts["test_reads"] == 1
    pids = {a.proc.pid: "a", b.proc.pid: "b (killed)", resumed.proc.pid: "b (resumed)"}
    per_worker = Counter(pids[int(t.user_attrs["owner_pid"])] for t in opt.trials if t.params)
    killed = [t for t in opt.trials if int(t.user_attrs.get("owner_pid", 0)) == b.proc.pid]
    assert killed and all(t.state == optuna.trial.TrialState.FAIL for t in killed)
    assert per_worker["a"] >= 1 and per_worker["b (killed)"] >= 1

    for run in study_runs(client):
        # Each machine ran its own copy (outside any git checkout), not this repository.
        if "trial_number" in run.data.tags:
            assert run.data.tags["git_commit"] == "unknown"
        logged = {**run.data.params, **run.data.tags}
        assert not [k for k, v in logged.items() if PASSWORD in v], run.info.run_name
    parent = next(r for r in study_runs(client) if r.data.tags.get("role") == "study")
    assert parent.data.tags["optuna_storage"].startswith("postgresql+psycopg2://postgres:***@")
    print(f"two machines: trials per worker {dict(per_worker)}, {counts}, wall {wall:.0f} s")


def test_claims_are_atomic_on_postgresql_and_not_studies(postgres: dict[str, str]) -> None:
    racers = 6
    won, lost = race_claims(postgres["optuna"], "race", racers)
    assert len(won) == 1 and len(lost) == racers - 1
    storage = open_storage(postgres["optuna"])
    assert [r.run_id for r in claimed_reads(storage, "race")] == [won[0].run_id]
    assert not [s.study_name for s in storage.get_all_studies() if "race" in s.study_name]


def database_text(url: str) -> str:
    """Every row of every table of a database, as text."""
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        tables = sqlalchemy.inspect(engine).get_table_names()
        rows = [str(conn.execute(sqlalchemy.text(f'SELECT * FROM "{t}"')).all()) for t in tables]
    engine.dispose()
    return "\n".join(rows)


def files_holding(folder: Path, secret: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_no_password_reaches_a_store_or_a_command_line(
    tiny_corpus: Path, tmp_path: Path, postgres: dict[str, str], form: str
) -> None:
    url = postgres[form]
    path = write_study(tmp_path, tiny_corpus, n_trials=1)
    env = {"NSYNTH_STORAGE": url}
    run = start(["sweep", "--experiment", str(path)], env=env)
    assert run.wait() == 0, run.text
    assert "evaluation run" in run.text and PASSWORD not in run.text
    assert files_holding(tmp_path / "mlruns", PASSWORD) == []  # tracking store and artifacts
    assert PASSWORD not in database_text(url)  # the study's own database
    print(f"{form}: no {PASSWORD!r} in {tmp_path / 'mlruns'} or the {form} database")

    # optuna-dashboard gets the URL through its environment: no process's command line
    # (what `ps` shows every local user) holds the password, and claims are not studies.
    port = free_port()
    dashboard = start(["dashboard", "--experiment", str(path), "--port", str(port)], env=env)
    try:
        assert dashboard.wait_for("answered in"), dashboard.text
        lines = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
        assert not [line for line in lines if PASSWORD in line]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=30) as r:
            studies = [s["study_name"] for s in json.load(r)["study_summaries"]]
        assert studies == ["faults"], studies
    finally:
        dashboard.proc.send_signal(signal.SIGTERM)
        dashboard.wait(60)


def test_a_password_free_socket_url_is_accepted_in_the_experiment_file(
    tiny_corpus: Path, tmp_path: Path, postgres: dict[str, str]
) -> None:
    path = write_study(tmp_path, tiny_corpus, n_trials=1)
    body = yaml.safe_load(path.read_text())
    body["storage"] = postgres["socket"]
    path.write_text(yaml.safe_dump(body))
    run = start(["evaluate", "--experiment", str(path)])
    assert run.wait() == 2
    assert "carries a password" not in run.text and "has not been run" in run.text
