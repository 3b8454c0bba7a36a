"""The pieces crash safety rests on, without training: per-trial sampler seeds, the surplus
rule, failing a dead worker's trial with its run, owner processes, redacted storage URLs,
and stores that a full disk cannot leave half-made."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest

import nsynth_research.core.files as files_module
from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.errors import MachineError, UserError
from nsynth_research.core.files import create_atomically
from nsynth_research.core.orchestration import (
    RUN_ATTR,
    STORAGE_ENV,
    URI_ATTR,
    Owner,
    has_password,
    reap,
    redact,
    surplus,
)
from nsynth_research.core.storage import make_sampler, open_storage, storage_url
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.tracking import open_store, tracked_run, tracking_uri


def study_config(**extra: object) -> StudyConfig:
    space = {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "k": {"type": "int", "low": 1, "high": 3},
    }
    return StudyConfig(name="unit", search_space=space, **extra)


def suggest(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0) + trial.suggest_int("k", 1, 3)


def sessions(url: str, sampler_for_session, n: int = 3) -> list[dict]:
    """Two sessions of n trials each on one storage, the second a fresh process would start."""
    for _ in range(2):
        opt = optuna.create_study(
            study_name="unit", storage=url, sampler=sampler_for_session(), load_if_exists=True
        )
        opt.optimize(suggest, n_trials=n)
    return [t.params for t in opt.trials]


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_a_restarted_study_proposes_new_points(tmp_path: Path, name: str) -> None:
    cfg = study_config(sampler={"name": name, "seed": 7, "n_startup_trials": 4})
    params = sessions(f"sqlite:///{tmp_path / 'new.db'}", lambda: make_sampler(cfg))
    assert len({tuple(sorted(p.items())) for p in params}) == len(params) == 6
    # What a sampler seeded once per process did: the restart replays the first trials.
    if name == "random":
        replay = sessions(
            f"sqlite:///{tmp_path / 'old.db'}", lambda: optuna.samplers.RandomSampler(seed=7)
        )
        assert replay[3:] == replay[:3]


def test_later_trials_beyond_n_trials_are_surplus(tmp_path: Path) -> None:
    opt = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    done = opt.ask()
    opt.tell(done, 1.0)
    running = opt.ask()  # another worker's trial, still running
    mine = opt.ask()
    assert surplus(opt, mine, n_trials=2)
    assert not surplus(opt, mine, n_trials=3)
    opt.tell(running, state=optuna.trial.TrialState.FAIL)  # a dead slot frees up
    assert not surplus(opt, mine, n_trials=2)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_owners_that_are_gone_are_told_apart_from_live_ones() -> None:
    me = Owner.me()
    assert not me.gone()
    assert Owner(me.host, dead_pid(), "").gone()
    assert not Owner("another-machine", dead_pid(), "").gone()  # cannot see other hosts
    # A recycled pid: same number, another start time.
    assert Owner(me.host, me.pid, repr(float(me.started) - 1)).gone()
    # Start times recorded as clock ticks since boot (older tags) are still understood.
    ticks = Path(f"/proc/{me.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    assert not Owner(me.host, me.pid, ticks).gone()
    assert Owner(me.host, me.pid, str(int(ticks) - 100)).gone()


def test_reap_fails_a_dead_workers_trial_and_its_run(tmp_path: Path) -> None:
    tracking = TrackingConfig(store=tmp_path / "mlruns")
    client = open_store(tracking)
    exp = client.create_experiment("unit")
    dead_run = client.create_run(exp).info.run_id
    live_run = client.create_run(exp).info.run_id
    opt = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'o.db'}"))
    for run_id, pid in ((dead_run, dead_pid()), (live_run, Owner.me().pid)):
        trial = opt.ask()
        owner = Owner(Owner.me().host, pid, "")
        attrs = {**owner.tags(), RUN_ATTR: run_id, URI_ATTR: tracking_uri(tracking)}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
    assert reap(opt) == [0]
    states = [t.state for t in opt.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING]
    assert client.get_run(dead_run).info.status == "FAILED"
    assert "died mid-trial" in client.get_run(dead_run).data.tags["error"]
    assert client.get_run(live_run).info.status == "RUNNING"


PASSWORD_FORMS = [
    "postgresql+psycopg2://lab:s3cret@db.example:5432/optuna",
    "postgresql://lab@db.example/optuna?password=s3cret",
    "postgresql://lab@db.example/optuna?sslmode=require&PASSWORD=s3cret&application_name=x",
    "postgresql+psycopg2://lab:s3cret@/optuna?host=/run/postgresql&sslpassword=s3cret",
    "mysql+pymysql://lab@db.example/optuna?passwd=s3cret",
]


@pytest.mark.parametrize("url", PASSWORD_FORMS)
def test_storage_urls_never_log_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    shown = redact(url)
    assert "s3cret" not in shown and ("db.example" in shown or "/run/postgresql" in shown)
    assert "***" in shown and has_password(url)
    from nsynth_research.instruments.config import InstrumentConfig

    base = InstrumentConfig(tracking=TrackingConfig(store=tmp_path / "mlruns"))
    with pytest.raises(UserError, match=f"export {STORAGE_ENV}"):
        storage_url(study_config(storage=url), base)
    monkeypatch.setenv(STORAGE_ENV, url)
    assert storage_url(study_config(), base) == url
    monkeypatch.delenv(STORAGE_ENV)
    assert storage_url(study_config(), base).endswith("mlruns/optuna.db")


def test_a_password_free_socket_url_is_accepted_as_written(tmp_path: Path) -> None:
    from nsynth_research.instruments.config import InstrumentConfig

    url = "postgresql+psycopg2://postgres@/optuna?host=/some/socket_dir"
    assert not has_password(url) and redact(url) == url
    base = InstrumentConfig(tracking=TrackingConfig(store=tmp_path / "mlruns"))
    assert storage_url(study_config(storage=url), base) == url


def test_an_unreachable_storage_is_one_line_naming_it_without_its_password() -> None:
    url = "postgresql+psycopg2://lab:s3cret@127.0.0.1:1/optuna"
    with pytest.raises(UserError) as caught:
        open_storage(url)
    message = str(caught.value)
    assert "cannot open the study storage" in message and "127.0.0.1" in message
    assert "s3cret" not in message and "\n" not in message


def test_a_full_disk_leaves_no_half_made_store(tmp_path: Path) -> None:
    target = tmp_path / "store" / "mlflow.db"

    def fill_up(path: Path) -> None:
        path.write_bytes(b"half a database")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with pytest.raises(UserError, match=r"disk filled up while creating the store at .*mlflow\.db"):
        create_atomically(target, fill_up, 2**20, "the store")
    assert list(target.parent.iterdir()) == []
    create_atomically(target, lambda p: p.write_bytes(b"whole"), 2**20, "the store")
    assert target.read_bytes() == b"whole"


def test_too_little_space_is_refused_before_creating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_module.shutil, "disk_usage", lambda p: type("U", (), {"free": 2**20}))
    with pytest.raises(UserError, match=r"the MLflow store in .*: 1 MiB free, 64 MiB needed"):
        tracking_uri(TrackingConfig(store=tmp_path / "mlruns"))
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


def test_a_run_that_fills_the_disk_is_failed_then_one_clear_error(tmp_path: Path) -> None:
    tracking = TrackingConfig(store=tmp_path / "mlruns", experiment="unit")
    with pytest.raises(MachineError, match="the disk is full") as caught, tracked_run(tracking):
        run_id = mlflow.active_run().info.run_id
        raise OSError(errno.ENOSPC, "No space left on device", "/data/features/x.npy")
    assert "/data/features/x.npy" in str(caught.value)
    assert open_store(tracking).get_run(run_id).info.status == "FAILED"
