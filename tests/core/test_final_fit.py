"""A study that searches on a subsample, fits its choice once on the whole train split, and
reads test with that model; final-fit overrides are checked before any trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nsynth_research.core.errors import ConfigError
from nsynth_research.core.final_fit import check_final_fit
from nsynth_research.core.selection import evaluate_study, format_summary
from nsynth_research.core.space import base_config, study_experiment
from nsynth_research.core.storage import RUN_ATTR
from nsynth_research.core.study import run_sweep
from nsynth_research.core.study_config import load_study_config
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.task import InstrumentTask

TASK = InstrumentTask()
REPO = Path(__file__).resolve().parents[2]
NOTE = "mlflow.note.content"


def write_study(tmp_path: Path, corpus: Path, final_fit: dict | None) -> Path:
    body = {
        "name": "subsampled",
        "base_config": str(REPO / "configs" / "baseline.yaml"),
        "overrides": {
            "data.root": str(corpus),
            "data.corpus": None,
            "data.max_notes_per_instrument": 2,
            "tracking.store": str(tmp_path / "mlruns"),
            "figures.tsne": False,
            "model.filters": [8, 8, 16],
            "model.dense": [16, 16],
            "training.epochs": 1,
        },
        "n_trials": 1,
        "sampler": {"name": "random", "seed": 1},
        "bootstrap": 100,
        "search_space": {"model.dropout": {"type": "float", "low": 0.0, "high": 0.4, "step": 0.2}},
    }
    if final_fit is not None:
        body["final_fit"] = final_fit
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.slow
def test_the_test_read_scores_the_final_fit_on_all_notes(tiny_corpus: Path, tmp_path: Path) -> None:
    everything = {"overrides": {"data.max_notes_per_instrument": None}}
    path = write_study(tmp_path, tiny_corpus, everything)
    study = load_study_config(path)
    outcome = run_sweep(TASK, study, path)
    client = open_store(outcome.base.tracking)
    exp = client.get_experiment_by_name(study_experiment(study)).experiment_id
    all_train = len(read_split(tiny_corpus, "train"))
    trial_runs = [t.user_attrs[RUN_ATTR] for t in outcome.study.trials]
    for run_id in trial_runs:  # the search ran on the subsample
        assert int(client.get_run(run_id).data.tags["n_train"]) < all_train

    evaluation = evaluate_study(TASK, study)
    fits = client.search_runs([exp], "tags.role = 'final_fit'")
    assert len(fits) == 1
    fit = fits[0]
    best = evaluation.trial
    assert fit.data.tags["mlflow.runName"] == f"final fit (trial {best})"
    assert fit.data.tags["mlflow.parentRunId"] == outcome.parent_run_id
    assert fit.info.status == "FINISHED" and fit.data.tags["fitted_trial"] == str(best)
    assert int(fit.data.tags["n_train"]) == all_train  # trained on every train note
    assert fit.data.params["data.max_notes_per_instrument"] == "None"
    assert fit.data.params["model.dropout"] == str(
        float(outcome.study.trials[best].params["model.dropout"])
    )
    # The single test read scored the final fit's model, and says so.
    run = client.get_run(evaluation.run_id)
    assert run.data.tags["evaluated_run_id"] == fit.info.run_id
    assert run.data.tags["evaluated_run_id"] not in trial_runs
    version = client.get_model_version_by_alias("nsynth-subsampled", "champion")
    assert version.tags["run_id"] == fit.info.run_id
    assert f"final fit (trial {best}), run {fit.info.run_id}" in run.data.tags[NOTE]
    assert "data.max_notes_per_instrument 2 -> None" in run.data.tags[NOTE]
    summary = format_summary(outcome.study, TASK.objective, evaluation)
    assert f"model read: final fit (trial {best})" in summary

    # A forced second read reuses the finished fit instead of training it again.
    again = evaluate_study(TASK, study, force=True)
    assert len(client.search_runs([exp], "tags.role = 'final_fit'")) == 1
    assert client.get_run(again.run_id).data.tags["evaluated_run_id"] == fit.info.run_id


def test_final_fit_overrides_are_checked_up_front(tiny_corpus: Path, tmp_path: Path) -> None:
    def study_with(overrides: dict):
        path = write_study(tmp_path, tiny_corpus, {"overrides": overrides})
        study = load_study_config(path)
        return study, base_config(study, InstrumentConfig)

    check_final_fit(*study_with({"data.max_notes_per_instrument": None, "training.epochs": 3}))
    for overrides, message in (
        ({"data.max_notes_per_instrument_typo": None}, "not a config key"),
        ({"model.dropout": 0.1}, "'model.dropout' is searched"),
        ({"training.objective": "val_loss"}, "is the objective"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_final_fit(*study_with(overrides))
    with pytest.raises(ConfigError):  # an empty final fit would be the trial itself
        study_with({})
