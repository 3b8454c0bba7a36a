"""The paths around the single test read, end to end through the command line: a second
`sweep` reports the earlier evaluation instead of reading test again, `--force` reads it again
on purpose, and changed data is refused rather than scored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nsynth_research.cli import main
from nsynth_research.core.selection import EVALUATED_TAG
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import load_study
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
    assert "already read once" in out and first[0] in out
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

    # Data changed since the champion was trained: scoring it would mix two corpora.
    meta = corpus / "nsynth-train" / "examples.json"
    examples = json.loads(meta.read_text())
    del examples[sorted(examples)[0]]
    meta.write_text(json.dumps(examples))
    assert main(["evaluate", "--experiment", str(path), "--force"]) == 2
    assert "changed since" in capsys.readouterr().err
    assert len(evaluations(path)) == 2
