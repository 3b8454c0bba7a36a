"""Faults of the machine and of its stores, through the real command line: a disk that really
fills mid-sweep (a small tmpfs), a read-only store, an unreachable study storage, data deleted
mid-run, a setting that cannot fit in memory, two experiment files under one study name, a
near-copy of a held-out test split, a study creator that died. Each is one `error:` line with
exit 2 (or no wait at all), and leaves nothing the next command cannot close."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nsynth_research.cli import main
from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.orchestration import Owner
from nsynth_research.core.parent_run import parent_run
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import CREATOR_ATTR, open_study
from nsynth_research.core.study_config import load_study_config
from nsynth_research.core.task import recorded_objective
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.evaluate_data import evaluate_data
from nsynth_research.instruments.task import InstrumentTask
from tests.core.procs import check_invariants, one_error_line, start, write_study
from tests.core.test_faults import opened, sweep, train_args

pytestmark = pytest.mark.slow
PASSWORD = "s3cret-pw"


def _mounted(target: Path, *options: str) -> bool:
    done = subprocess.run(["mount", *options, str(target)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 MiB tmpfs (no loop device), or a skip where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    tmpfs = ("-t", "tmpfs", "-o", "size=96m", "tmpfs")
    if shutil.which("mount") is None or not _mounted(disk, *tmpfs):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(folder: Path) -> None:
    with (folder / "fill").open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 2**20)
        except OSError:
            pass


def test_a_disk_that_fills_mid_sweep(tiny_corpus: Path, small_disk: Path) -> None:
    """A real full disk under both stores while a trial trains: one line, exit 2, no
    traceback; once space is freed, the next sweep closes what was left and completes."""
    path = write_study(small_disk, tiny_corpus, n_trials=2)
    run = start(sweep(path))
    assert run.wait_for(r"trial 0 epoch 1/2"), run.text
    fill(small_disk)
    assert run.wait() == 2, run.text
    assert "disk is full" in one_error_line(run)
    (small_disk / "fill").unlink()
    resumed = start(sweep(path))
    assert resumed.wait() == 0, resumed.text
    _, opt, client = opened(path)
    check_invariants(opt, client, n_trials=2)


def read_only(folder: Path) -> tuple[str, ...]:
    """A command prefix that runs with `folder` read-only (a private read-only bind mount as
    root, where permissions do not apply; file modes otherwise)."""
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if shutil.which("unshare") and probe.returncode == 0:
        mount = f'mount --bind -o ro {folder} {folder} && exec "$0" "$@"'
        return ("unshare", "--mount", "--propagation", "private", "sh", "-c", mount)
    for path in (folder, *folder.rglob("*")):
        path.chmod(path.stat().st_mode & ~0o222)
    return ()


def test_a_read_only_store_is_one_line(tiny_corpus: Path, tmp_path: Path) -> None:
    path = write_study(tmp_path, tiny_corpus, n_trials=1)
    open_store(TrackingConfig(store=tmp_path / "mlruns"))  # the store exists, read-only below
    prefix = read_only(tmp_path / "mlruns")
    for args in (sweep(path), train_args(tiny_corpus, tmp_path / "mlruns", epochs=1)):
        run = start(args, prefix=prefix)
        assert run.wait() == 2, run.text
        assert "read-only" in one_error_line(run)


def test_an_unreachable_storage_is_one_line_without_its_password(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    path = write_study(tmp_path, tiny_corpus, n_trials=1)
    monkeypatch.setenv("NSYNTH_STORAGE", f"postgresql+psycopg2://lab:{PASSWORD}@127.0.0.1:1/db")
    for args in (["evaluate"], ["dashboard", "--port", "0"], ["sweep"]):
        assert main([*args, "--experiment", str(path)]) == 2
        err = capsys.readouterr().err
        (line,) = [line for line in err.splitlines() if line.startswith("error:")]
        assert line.startswith("error: cannot open the study storage") and "Traceback" not in err
        assert PASSWORD not in err and "lab:***@127.0.0.1:1" in line


def test_data_deleted_mid_run_is_one_line(tiny_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, ignore=shutil.ignore_patterns("features", "stats"))
    run = start(train_args(corpus, tmp_path / "mlruns", epochs=4))
    assert run.wait_for(r"Epoch 2/4"), run.text
    shutil.rmtree(corpus)
    assert run.wait() == 2, run.text
    assert "is gone" in one_error_line(run) and str(corpus) in run.text


def test_a_setting_that_cannot_fit_in_memory_is_refused_up_front(
    tiny_corpus: Path, tmp_path: Path, capsys
) -> None:
    args = train_args(tiny_corpus, tmp_path / "mlruns", epochs=1)
    started = time.perf_counter()
    assert main([*args, "features.n_fft=100000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "GiB of memory" in err and "features.n_fft" in err
    assert time.perf_counter() - started < 60


def test_two_experiment_files_cannot_share_a_study(
    tiny_corpus: Path, tmp_path: Path, capsys
) -> None:
    first = write_study(tmp_path, tiny_corpus, n_trials=1)
    study = load_study_config(first)
    task = InstrumentTask()
    open_study(study, recorded_objective(task, base_config(study, InstrumentConfig)), "maximize")
    other = yaml.safe_load(first.read_text())
    other["sampler"] = {"name": "tpe", "seed": 9}
    other["search_space"] = {"model.dropout": {"type": "float", "low": 0.1, "high": 0.5}}
    other["overrides"]["training.epochs"] = 3
    second = tmp_path / "other.yaml"
    second.write_text(yaml.safe_dump(other))
    for command in ("evaluate", "sweep"):
        assert main([command, "--experiment", str(second)]) == 2
        err = capsys.readouterr().err
        assert "created from another definition" in err
        for key in ("base.training.epochs", "sampler.name", "search_space.model.dropout.low"):
            assert key in err
    # The study's own file, with a larger budget, is the same study.
    open_study(load_study_config(first, ["n_trials=5"]), recorded_objective(
        task, base_config(study, InstrumentConfig)), "maximize")  # fmt: skip


def test_a_near_copy_of_the_test_split_is_refused(tiny_run, tmp_path: Path) -> None:
    """The held-out test split minus one note, copied elsewhere: not the same fingerprint,
    but its notes are the test notes, so it is refused like the split itself."""
    config, run_id = tiny_run
    source = Path(config.data.root) / "nsynth-test"
    copy = tmp_path / "elsewhere" / "nsynth-test"
    shutil.copytree(source, copy)
    examples = json.loads((copy / "examples.json").read_text())
    dropped = sorted(examples)[0]
    del examples[dropped]
    (copy / "examples.json").write_text(json.dumps(examples))
    (copy / "audio" / f"{dropped}.wav").unlink()
    with pytest.raises(UserError, match=r"(\d+) of \1 notes of .* are notes of the test split"):
        evaluate_data(run_id, copy.parent, "test", config.tracking, resamples=100)


def test_a_dead_creator_is_not_waited_for(tiny_corpus: Path, tmp_path: Path) -> None:
    """A sweep that created the study and died before its parent run (e.g. refused for disk
    space) is not waited for by the next one: it opens the parent at once."""
    study = load_study_config(write_study(tmp_path, tiny_corpus, n_trials=1))
    base = recorded_objective(InstrumentTask(), base_config(study, InstrumentConfig))
    opt, created = open_study(study, base, "maximize")
    assert created
    gone = subprocess.Popen(["true"])
    gone.wait()
    opt.set_user_attr(CREATOR_ATTR, Owner(Owner.me().host, gone.pid, "").tags())
    started = time.perf_counter()
    assert parent_run(study, base, opt, created=False)
    assert time.perf_counter() - started < 10
