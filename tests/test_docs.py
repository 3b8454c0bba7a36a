"""`make docs`: every marker refilled from the benchmarks' results and the schemas, and the
study's part (figures, results.md) only for a study that has a result, never by creating
one; the dream pictures are those the newest dream run logged."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import mlflow
import optuna
import pytest

from nsynth_research.cli import main
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import open_storage, storage_url
from nsynth_research.core.study_config import load_study_config
from nsynth_research.docs import DREAM_FIGURES, export_dream_figures
from nsynth_research.instruments.config import InstrumentConfig
from tests.core.test_sweep import write_study


def make_repo(root: Path) -> Path:
    """A repository root with docs/, README.md and one benchmark's results; returns docs/."""
    results = root / "benchmarks" / "results"
    results.mkdir(parents=True)
    payload = {
        "date": "2026-01-02 03:04:05",
        "machine": "x86_64, 2 cores",
        "summary": {"ratio": 0.912345},
        "tables": {"train": {"headers": ["contender", "ex/s"], "rows": [["a", 612.3456]]}},
    }
    (results / "pipeline.json").write_text(json.dumps(payload))
    docs = root / "docs"
    docs.mkdir()
    (docs / "performance.md").write_text(
        "Ratio <!-- value: pipeline/summary.ratio -->0.5<!-- /value -->.\n\n"
        "<!-- table: pipeline/train -->\nstale\n<!-- /table -->\n\n"
        "<!-- table: accuracy/validation -->\n<!-- /table -->\n\n"
        "<!-- config: dream -->\n<!-- /config -->\n\n"
        "<!-- config: study -->\n<!-- /config -->\n"
    )
    (root / "README.md").write_text(
        "`make sweep`: <!-- value: setup/sweep_seconds -->1<!-- /value --> s\n"
    )
    return docs


def test_docs_fills_every_marker_and_skips_a_study_without_a_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = make_repo(tmp_path / "repo")
    experiment = write_study(tmp_path, tmp_path / "no-corpus", n_trials=1)

    assert main(["docs", "--experiment", str(experiment), "--out", str(docs)]) == 0

    page = (docs / "performance.md").read_text()
    assert "Ratio <!-- value: pipeline/summary.ratio -->0.9123<!-- /value -->." in page
    assert "| a | 612.3 |" in page and "stale" not in page
    assert "Not measured yet: run `make bench BENCH=accuracy`" in page
    assert "`griffin_lim_iters`" in page  # the dream schema, which only commands may import
    assert "`n_trials`" in page
    readme = (tmp_path / "repo" / "README.md").read_text()
    assert "<!-- value: setup/sweep_seconds -->(not measured)<!-- /value --> s" in readme
    out = capsys.readouterr().out
    assert "nothing to fill: table accuracy/validation" in out
    assert "nothing to fill: value setup/sweep_seconds" in out
    assert "skipped the study's figures and results.md" in out and "no test evaluation" in out
    assert not (docs / "results.md").exists()
    # Looking for a result did not create the study it looked for.
    study = load_study_config(experiment)
    storage = open_storage(storage_url(study, base_config(study, InstrumentConfig)))
    assert optuna.get_all_study_names(storage) == []


@pytest.mark.slow
def test_docs_exports_an_evaluated_study(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, ignore=shutil.ignore_patterns("features", "stats"))
    experiment = write_study(tmp_path, corpus, n_trials=1)
    assert main(["sweep", "--experiment", str(experiment)]) == 0
    docs = make_repo(tmp_path / "repo")
    capsys.readouterr()

    assert main(["docs", "--experiment", str(experiment), "--out", str(docs)]) == 0

    assert "| a | 612.3 |" in (docs / "performance.md").read_text()
    results = (docs / "results.md").read_text()
    first = results.split("```")[1].strip().splitlines()[0]
    assert first.startswith("champion of study tiny (trial 0, test read once): test accuracy")
    assert "95% bootstrap interval over instruments" in first
    assert "| family | precision | recall | F1 | notes | instruments |" in results
    for name in ("optimization_history.png", "confusion_test.png", "tsne_test_2d.png"):
        assert (docs / name).is_file() and f"]({name})" in results
    assert "skipped" not in capsys.readouterr().out


def dream_run(client: mlflow.MlflowClient, experiment: str, files: list[str], tmp: Path) -> str:
    """A finished dream run that logged `files` (each holding its own name)."""
    run = client.create_run(experiment, tags={"task": "dream", "state": "FINISHED"})
    for name in files:
        local = tmp / run.info.run_id / name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(name)
        folder = str(Path(name).parent)
        client.log_artifact(run.info.run_id, str(local), None if folder == "." else folder)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_dream_figures_come_from_the_newest_dream_run_and_skip_what_it_did_not_log(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("dreams", artifact_location=str(tmp_path / "art"))
    dream_run(client, experiment, list(DREAM_FIGURES), tmp_path / "old")
    time.sleep(0.01)
    # The newest run's model had no convs: no kernels, and no channel grid.
    logged = ["class/grid_noise.png", "class/grid_note.png", "class/curves_logit.png"]
    dream_run(client, experiment, logged, tmp_path / "new")

    out = tmp_path / "docs"
    written = export_dream_figures(client, out)

    assert sorted(p.name for p in written) == sorted(DREAM_FIGURES[a] for a in logged)
    for artifact in logged:
        assert (out / DREAM_FIGURES[artifact]).read_text() == artifact
    assert not (out / "dream_conv0_kernels.png").exists()
