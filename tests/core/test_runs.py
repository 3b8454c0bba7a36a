"""What a tracked run shows in the MLflow run table: a metric column holds the epoch the run
kept (the number the study scored), the curves keep every epoch under `epoch/`, epochs count
from 1, and the description, the data tag and the Datasets column quote the same digests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from nsynth_research.core.config import ExperimentConfig, TrackingConfig
from nsynth_research.core.describe import (
    NOTE_TAG,
    combine_digests,
    log_dataset,
    mark_pruned,
    pruned_note,
)
from nsynth_research.core.runs import tracked_training
from nsynth_research.core.task import FitResult, Objective
from nsynth_research.core.tracking import open_store
from nsynth_research.core.trial import _Pruning

#: The kept epoch is the second of three: the last epoch's numbers must not show.
HISTORY = {"loss": [0.9, 0.5, 0.4], "val_loss": [0.8, 0.6, 0.7], "val_score": [0.2, 0.7, 0.1]}
DIGESTS = {"train": "aaaa1111", "valid": "bbbb2222"}


class FakeConfig(ExperimentConfig):
    task: str = "fake"


@dataclass(frozen=True)
class FakeData:
    fingerprint: str = combine_digests(DIGESTS.values())


class FakeTask:
    """Instant, deterministic: three epochs whose best (by val_score) is the second."""

    name = "fake"
    config_type = FakeConfig
    objective = Objective("val_score", "maximize", "score")
    epoch_metrics = {"loss": "train_loss", "val_loss": "val_loss", "val_score": "val_score"}  # noqa: RUF012
    study_fixed_sections = ()

    def fit(
        self, config: FakeConfig, data: FakeData, *, callbacks: Any = (), **_: Any
    ) -> FitResult:
        model = SimpleNamespace(optimizer=SimpleNamespace(learning_rate=0.01))
        for callback in callbacks:  # the core's epoch logger, as Keras would call it
            callback.set_model(model)
            for epoch in range(3):
                callback.on_epoch_end(epoch, {k: v[epoch] for k, v in HISTORY.items()})
        return FitResult(
            model=None,
            history={k: list(v) for k, v in HISTORY.items()},
            best_epoch=1,
            epochs_run=3,
            seconds=0.0,
            objective=0.7,
            metrics={"epochs_run": 3.0, "best_epoch": 1.0},
        )

    def log_inputs(self, config: FakeConfig, data: FakeData) -> dict[str, str]:
        for name, digest in DIGESTS.items():
            log_dataset(f"corpus/{name}", digest, name, 10, "/nowhere")
        return {"data_fingerprint": data.fingerprint}

    def log_result(self, config: FakeConfig, result: FitResult) -> None:
        pass


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("runs") / "mlruns"
    config = FakeConfig(tracking=TrackingConfig(store=Path(store), experiment="fake"))
    tracked = tracked_training(FakeTask(), config, FakeData(), verbose=0)
    client = open_store(config.tracking)
    return client, client.get_run(tracked.run_id)


def test_a_metric_column_shows_the_kept_epoch_not_the_last(run) -> None:
    _, logged = run
    m = logged.data.metrics
    assert m["val_score"] == 0.7 and m["val_loss"] == 0.6 and m["train_loss"] == 0.5
    assert m["best_epoch"] == 2  # counted from 1, like every step and description


def test_curves_keep_every_epoch_under_epoch_names_from_step_1(run) -> None:
    client, logged = run
    for name, values in (("val_score", HISTORY["val_score"]), ("train_loss", HISTORY["loss"])):
        history = client.get_metric_history(logged.info.run_id, f"epoch/{name}")
        assert [(h.step, h.value) for h in history] == list(enumerate(values, start=1))
    kept = client.get_metric_history(logged.info.run_id, "val_score")
    assert [(h.step, h.value) for h in kept] == [(2, 0.7)]  # one value, at its epoch


def test_description_tag_and_datasets_agree(run) -> None:
    _, logged = run
    digests = [d.dataset.digest for d in logged.inputs.dataset_inputs]
    assert sorted(digests) == sorted(DIGESTS.values())
    tag = logged.data.tags["data_fingerprint"]
    assert tag == combine_digests(digests)
    note = logged.data.tags[NOTE_TAG]
    assert "score 0.7000 (best epoch 2 of 3)" in note
    assert f"Data {tag}:" in note and all(f"{d} (10 notes)" in note for d in digests)


def test_the_pruning_callback_reports_epochs_from_1() -> None:
    """optuna-dashboard's steps are the epochs MLflow and the logs show; the pruned epoch's
    logs are kept for the run's scored columns."""
    reports: list[tuple[float, int]] = []
    trial = SimpleNamespace(
        report=lambda value, step: reports.append((value, step)),
        should_prune=lambda: len(reports) == 2,
    )
    pruning = _Pruning(trial, "val_score")  # type: ignore[arg-type]
    pruning.on_epoch_end(0, {"val_score": 0.3})
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 2"):
        pruning.on_epoch_end(1, {"val_score": 0.4, "val_loss": 1.0})
    assert reports == [(0.3, 1), (0.4, 2)]
    assert pruning.pruned_at == 2 and pruning.logs == {"val_score": 0.4, "val_loss": 1.0}


class Pruned(Exception):
    pass


class PrunedTask(FakeTask):
    """Pruned after its second epoch, as the pruning callback would stop it."""

    def fit(self, config: FakeConfig, data: FakeData, *, callbacks: Any = (), **_: Any):
        super().fit(config, data, callbacks=callbacks)
        raise Pruned("pruned at epoch 2")


def test_a_pruned_run_shows_its_last_score_and_its_data(tmp_path: Path) -> None:
    """Optuna scores a pruned trial by its last report; the run table shows that number, and
    the description names the data like a finished run's."""
    config = FakeConfig(tracking=TrackingConfig(store=tmp_path / "mlruns", experiment="fake"))
    runs: list[str] = []
    with pytest.raises(Pruned):
        tracked_training(
            PrunedTask(), config, FakeData(), pruned=(Pruned,), on_start=runs.append, verbose=0
        )
    client = open_store(config.tracking)
    note = pruned_note(3, 2, "score", 0.7)
    mark_pruned(client, runs[0], 3, 2, note, {"val_score": 0.7, "val_loss": 0.6})
    logged = client.get_run(runs[0])
    assert logged.data.tags["mlflow.runName"] == "trial 3 (pruned at epoch 2)"
    assert logged.data.metrics["val_score"] == 0.7
    kept = client.get_metric_history(runs[0], "val_score")
    assert [(h.step, h.value) for h in kept] == [(2, 0.7)]
    tag = logged.data.tags["data_fingerprint"]
    assert logged.data.tags[NOTE_TAG].startswith(note)
    assert f"Data {tag}: corpus/train aaaa1111 (10 notes)" in logged.data.tags[NOTE_TAG]
