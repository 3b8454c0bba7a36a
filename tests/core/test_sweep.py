"""A whole study on the tiny corpus: parent/child runs, pruning marks, selection, the
test-once guard, resuming, and an interrupted trial."""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import optuna
import pytest
import yaml
from optuna.trial import TrialState

import nsynth_research.core.storage as storage_module
import nsynth_research.core.trial as trial_module
from nsynth_research.core.errors import UserError
from nsynth_research.core.selection import EVALUATED_TAG, evaluate_study, format_summary
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import RUN_ATTR, load_study
from nsynth_research.core.study import run_sweep
from nsynth_research.core.study_config import StudyConfig, load_study_config
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.task import InstrumentTask

TASK = InstrumentTask()
NOTE = "mlflow.note.content"

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


class PruneTrial(optuna.pruners.BasePruner):
    """Prunes exactly the listed trial numbers, so pruning is tested without luck."""

    def __init__(self, numbers: set[int]) -> None:
        self.numbers = numbers

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number in self.numbers


def write_study(tmp_path: Path, corpus: Path, n_trials: int) -> Path:
    body = {
        "name": "tiny",
        "base_config": str(REPO / "configs" / "baseline.yaml"),
        "overrides": {
            "data.root": str(corpus),
            "data.corpus": None,
            "tracking.store": str(tmp_path / "mlruns"),
            "model.filters": [16, 16, 32],
            "model.dense": [32, 32],
            "training.epochs": 2,
        },
        "n_trials": n_trials,
        "sampler": {"name": "random", "seed": 1},
        "enqueue_baseline": True,
        "bootstrap": 200,
        "search_space": {
            "optimizer": {
                "type": "categorical",
                "choices": {
                    "adadelta_0.01": {
                        "optimizer.name": "adadelta",
                        "optimizer.learning_rate": 0.01,
                    },
                    "adam_1e-3": {"optimizer.name": "adam", "optimizer.learning_rate": 0.001},
                },
            },
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.4, "step": 0.2},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def children(study: StudyConfig, parent: str) -> list[mlflow.entities.Run]:
    base = base_config(study, InstrumentConfig)
    client = open_store(base.tracking)
    exp = client.get_experiment_by_name("study-tiny").experiment_id
    return client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent}'")


def test_study_end_to_end(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "make_pruner", lambda study: PruneTrial({2}))
    path = write_study(tmp_path, tiny_corpus, n_trials=3)
    study = load_study_config(path)
    outcome = run_sweep(TASK, study, path)
    opt = outcome.study
    client = open_store(outcome.base.tracking)

    # One parent, one child per trial, the seed baseline first, pruned trial marked.
    assert [t.state for t in opt.trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    assert opt.trials[0].params["optimizer"] == "adadelta_0.01"
    assert opt.trials[0].user_attrs["baseline"] is True
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["role"] == "study"
    runs = {r.data.tags["trial_number"]: r for r in children(study, outcome.parent_run_id)}
    assert set(runs) == {"0", "1", "2"}
    assert runs["2"].info.status == "KILLED" and runs["2"].data.tags["state"] == "PRUNED"
    assert len(client.get_metric_history(runs["2"].info.run_id, "epoch/val_accuracy")) == 1
    for number in ("0", "1"):
        assert runs[number].info.status == "FINISHED"
        assert len(client.get_metric_history(runs[number].info.run_id, "epoch/val_accuracy")) == 2
        assert opt.trials[int(number)].user_attrs[RUN_ATTR] == runs[number].info.run_id
    artifacts = {a.path for a in client.list_artifacts(outcome.parent_run_id)}
    figures = {a.path for a in client.list_artifacts(outcome.parent_run_id, "figures")}
    assert {"trials.csv", "trials.html", "study.json", "base_config.yaml"} <= artifacts
    assert {"figures/optimization_history.png", "figures/slice.png"} <= figures
    assert parent.data.metrics["trials_pruned"] == 1 and parent.data.metrics["trials_complete"] == 2
    # What the MLflow UI shows at first sight (issue 16): descriptions, searched choices as
    # params, study settings on the parent, pruned runs named as such, datasets, 1-based steps.
    assert parent.data.params["n_trials"] == "3" and "space.optimizer" in parent.data.params
    assert parent.data.tags["git_commit"] and "Best: trial" in parent.data.tags[NOTE]
    pruned = runs["2"].data.tags
    assert pruned["mlflow.runName"] == "trial 2 (pruned at epoch 1)"
    assert pruned["pruned_at_epoch"] == "1" and "error" not in pruned
    trial_1 = runs["1"]
    assert trial_1.data.params["search.optimizer"] in {"adadelta_0.01", "adam_1e-3"}
    assert trial_1.data.params["model.dropout"] in {"0.0", "0.2", "0.4"}
    assert "validation accuracy" in trial_1.data.tags[NOTE]
    assert "epoch/learning_rate" not in trial_1.data.metrics  # constant: a param, not a chart
    steps = client.get_metric_history(trial_1.info.run_id, "epoch/val_accuracy")
    assert [m.step for m in steps] == [1, 2]
    contexts = {
        {t.key: t.value for t in d.tags}["mlflow.data.context"]
        for d in trial_1.inputs.dataset_inputs
    }
    assert contexts == {"training", "validation"}

    # The champion is the best trial by validation accuracy, scored once on test.
    evaluation = evaluate_study(TASK, study)
    best = max(
        (t for t in opt.trials if t.state == TrialState.COMPLETE),
        key=lambda t: (t.value, -t.number),
    )
    assert evaluation.trial == best.number
    m = evaluation.metrics
    low, high = m["test_accuracy_ci_low"], m["test_accuracy_ci_high"]
    assert 0.0 <= low <= m["test_accuracy"] <= high <= 1.0
    run = client.get_run(evaluation.run_id)
    assert run.data.tags["evaluated_run_id"] == best.user_attrs[RUN_ATTR]
    assert run.data.metrics["test_accuracy"] == pytest.approx(m["test_accuracy"])
    figures = {a.path for a in client.list_artifacts(evaluation.run_id, "figures")}
    assert {
        "figures/confusion_test.png",
        "figures/tsne_test_2d.png",
        "figures/tsne_test_3d.png",
    } <= figures
    version = client.get_model_version_by_alias("nsynth-tiny", "champion")
    assert version.tags["run_id"] == best.user_attrs[RUN_ATTR]
    assert version.tags["evaluation_run_id"] == evaluation.run_id
    assert "test accuracy" in version.description and evaluation.run_id in version.description
    assert not {k for k in run.data.metrics if k.startswith("val_") or "." in k}
    assert "test_min_family_recall" in run.data.metrics
    assert "per_family_test.table.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert client.get_run(outcome.parent_run_id).data.tags[EVALUATED_TAG] == evaluation.run_id
    assert "seed baseline (trial 0)" in format_summary(opt, TASK.objective, evaluation)

    # A second look at test is refused, and the refusal is logged.
    with pytest.raises(UserError, match="already evaluated"):
        evaluate_study(TASK, study)
    refused = [
        r for r in children(study, outcome.parent_run_id) if r.data.tags.get("state") == "REFUSED"
    ]
    assert len(refused) == 1

    # Rerunning with a larger budget continues the same study: nothing lost or repeated.
    first_params = [t.params for t in opt.trials]
    bigger = load_study_config(path, ["n_trials=4"])
    resumed = run_sweep(TASK, bigger, path)
    assert resumed.parent_run_id == outcome.parent_run_id
    assert len(resumed.study.trials) == 4
    assert [t.number for t in resumed.study.trials] == [0, 1, 2, 3]
    assert [t.params for t in resumed.study.trials[:3]] == first_params


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        raise KeyboardInterrupt("simulated Ctrl-C")


def test_an_interrupted_trial_is_failed_not_running(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_study(tmp_path, tiny_corpus, n_trials=2)
    study = load_study_config(path)
    real = trial_module._Pruning

    def interrupt_trial_1(trial: optuna.Trial, monitor: str) -> keras.callbacks.Callback:
        return Interrupt() if trial.number == 1 else real(trial, monitor)

    monkeypatch.setattr(trial_module, "_Pruning", interrupt_trial_1)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(TASK, study, path)
    opt = load_study(study, base_config(study, InstrumentConfig), "maximize")
    assert [t.state for t in opt.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    client = open_store(base_config(study, InstrumentConfig).tracking)
    killed = client.get_run(opt.trials[1].user_attrs[RUN_ATTR])
    assert killed.info.status == "FAILED" and killed.data.tags["state"] == "INTERRUPTED"

    monkeypatch.setattr(trial_module, "_Pruning", real)
    resumed = run_sweep(TASK, study, path)
    states = [t.state for t in resumed.study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
