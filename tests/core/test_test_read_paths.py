"""The paths around the single test read, end to end through the command line: a second
`sweep` reports the earlier evaluation instead of reading test again, `--force` reads it again
on purpose, changed data is refused rather than scored, and a study stopped by its time limit
before n_trials never reads test by itself."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from nsynth_research.cli import main
from nsynth_research.core.orchestration import claimed_reads
from nsynth_research.core.selection import EVALUATED_TAG
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import load_study, open_storage, storage_url
from nsynth_research.core.study import PARENT_ATTR
from nsynth_research.core.study_config import load_study_config
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import InstrumentConfig
from tests.core.test_sweep import write_study

pytestmark = pytest.mark.slow


def evaluations(path: Path) -> list[str]:
    """Run ids of the study's evaluation runs that read the test split (refusals excluded)."""
    study = load_study_config(path)
    base = base_config(study, InstrumentConfig)
    client = open_store(base.tracking)
    exp = client.get_experiment_by_name("study-tiny").experiment_id
    runs = client.search_runs([exp], "tags.role = 'evaluation'")
    return [r.info.run_id for r in runs if "test_accuracy" in r.data.metrics]


def test_second_sweep_force_and_changed_data(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, ignore=shutil.ignore_patterns("features", "stats"))
    path = write_study(tmp_path, corpus, n_trials=1)
    assert main(["sweep", "--experiment", str(path)]) == 0
    first = evaluations(path)
    assert len(first) == 1
    capsys.readouterr()

    # `make docs` exports the evaluated study's figures and results page.
    out = tmp_path / "docs"
    assert main(["docs", "--experiment", str(path), "--out", str(out)]) == 0
    assert (out / "confusion_test.png").is_file() and "read once" in (
        out / "results.md"
    ).read_text()
    capsys.readouterr()

    # A rerun of the finished study reports the evaluation it already has.
    assert main(["sweep", "--experiment", str(path)]) == 0
    out = capsys.readouterr().out
    assert "already read" in out and first[0] in out
    assert evaluations(path) == first

    # `evaluate` without --force refuses; with it, the test split is read a second time.
    assert main(["evaluate", "--experiment", str(path)]) == 2
    assert "already evaluated" in capsys.readouterr().err
    assert main(["evaluate", "--experiment", str(path), "--force"]) == 0
    assert len(evaluations(path)) == 2
    study = load_study_config(path)
    opt = load_study(study, base_config(study, InstrumentConfig), "maximize")
    client = open_store(base_config(study, InstrumentConfig).tracking)
    latest = client.get_run(opt.user_attrs[PARENT_ATTR]).data.tags[EVALUATED_TAG]
    assert latest in evaluations(path) and latest != first[0]
    # A third look is refused, naming the latest read (the forced one), not the first.
    assert main(["evaluate", "--experiment", str(path)]) == 2
    err = capsys.readouterr().err
    assert latest in err and first[0] not in err

    # Data changed since the champion was trained: scoring it would mix two corpora.
    meta = corpus / "nsynth-train" / "examples.json"
    examples = json.loads(meta.read_text())
    del examples[sorted(examples)[0]]
    meta.write_text(json.dumps(examples))
    assert main(["evaluate", "--experiment", str(path), "--force"]) == 2
    assert "changed since" in capsys.readouterr().err
    assert len(evaluations(path)) == 2


def test_a_study_stopped_by_its_time_limit_does_not_read_test(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_study(tmp_path, tiny_corpus, n_trials=6)
    study = load_study_config(path)
    storage = open_storage(storage_url(study, base_config(study, InstrumentConfig)))

    # The time limit ends the sweep before n_trials: no claim, and the summary says why it
    # stopped, how far it got and the two ways on.
    assert main(["sweep", "--experiment", str(path), "timeout_minutes=0.15"]) == 0
    out = capsys.readouterr().out
    finished = int(re.search(r"with (\d+) of 6 trials finished", out).group(1))
    assert 1 <= finished < 6 and "stopped by its time limit" in out
    assert "`make sweep`" in out and "`make evaluate INCOMPLETE=1`" in out
    assert claimed_reads(storage, study.name) == [] and evaluations(path) == []

    # `evaluate` does not read it by itself either; with the flag it reads, as early.
    assert main(["evaluate", "--experiment", str(path)]) == 2
    assert "is incomplete" in capsys.readouterr().err
    assert claimed_reads(storage, study.name) == []
    assert main(["evaluate", "--experiment", str(path), "--incomplete"]) == 0
    assert f"the test read came early, on purpose (INCOMPLETE=1), when {finished} of 6" in (
        capsys.readouterr().out
    )
    (read,) = claimed_reads(storage, study.name)
    assert (read.finished, read.n_trials) == (finished, 6)

    # Finishing the study later reports that read and says plainly it came early.
    assert main(["sweep", "--experiment", str(path), f"n_trials={finished + 1}"]) == 0
    out = capsys.readouterr().out
    assert f"early: at {finished} of 6 trials finished" in out
    assert "the test read came early" in out and len(evaluations(path)) == 1
