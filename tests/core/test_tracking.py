"""One tracked run end to end on the tiny corpus, logged to a throw-away MLflow store."""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from nsynth_research.core.config import validate
from nsynth_research.core.runs import run_config, tracked_training
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import InstrumentConfig, load_config
from nsynth_research.instruments.task import InstrumentTask
from nsynth_research.instruments.training import PreparedData, prepare_data

TASK = InstrumentTask()

pytestmark = pytest.mark.slow


def config_for(root: Path, store: Path, *extra: str) -> InstrumentConfig:
    return load_config(
        None,
        [
            f"data.root={root}",
            f"tracking.store={store}",
            "tracking.experiment=test",
            "model.filters=[16,16,32]",
            "model.dense=[64,32]",
            "training.epochs=2",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def data(tiny_corpus: Path) -> PreparedData:
    return prepare_data(config_for(tiny_corpus, Path("unused")), progress=False)


def artifact_paths(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def test_a_run_logs_everything_needed_to_browse_and_rebuild_it(
    tiny_corpus: Path, data: PreparedData, tmp_path: Path
) -> None:
    cfg = config_for(tiny_corpus, tmp_path / "mlruns")
    tracked = tracked_training(TASK, cfg, data, verbose=0)
    client = open_store(cfg.tracking)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert (tmp_path / "mlruns" / "artifacts").is_dir()

    history = client.get_metric_history(tracked.run_id, "epoch/val_accuracy")
    assert [m.step for m in history] == [1, 2]  # epochs are 1-based everywhere a person reads them
    assert [m.value for m in history] == pytest.approx(tracked.result.history["val_accuracy"])
    assert len(client.get_metric_history(tracked.run_id, "epoch/train_loss")) == 2
    metrics = run.data.metrics
    assert metrics["val_accuracy"] == tracked.result.objective  # the kept epoch's
    assert run.data.params["model.filters"] == "[16, 16, 32]"
    tags = run.data.tags
    # Throughput counts every train note of every epoch over the training phases' time only
    # (validation and logging excluded), so it cannot exceed what the wall time allows.
    assert 0 < metrics["train_seconds"] <= metrics["wall_seconds"]
    assert metrics["examples_per_second"] == pytest.approx(
        int(tags["n_train"]) * metrics["epochs_run"] / metrics["train_seconds"]
    )
    assert tags["data_fingerprint"] == data.fingerprint
    assert tags["git_commit"] and tags["git_dirty"] in {"true", "false", "unknown"}
    assert tags["state"] == "FINISHED"

    files = artifact_paths(client, tracked.run_id)
    assert {
        "config.yaml",
        "train_stats.npz",
        "figures/confusion_valid.png",
        "figures/tsne_valid_2d.png",
    } <= files

    # The logged config alone re-creates the run's config, naming the objective it used
    # (the task's default, as the config left it None).
    assert cfg.training.objective is None
    used = cfg.model_copy(
        update={"training": cfg.training.model_copy(update={"objective": "val_accuracy"})}
    )
    assert run_config(client, tracked.run_id, InstrumentConfig) == used
    text = mlflow.artifacts.load_text(f"runs:/{tracked.run_id}/config.yaml")
    assert validate(yaml.safe_load(text), "config", InstrumentConfig) == used

    # The logged model is the trained one: same weights, same logits (a freshly built model
    # of the same shape would have the same parameter count but not these).
    model = mlflow.keras.load_model(tags["model_uri"])
    assert isinstance(model, keras.Model)
    trained = tracked.result.model
    for mine, logged in zip(trained.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, logged)
    x = np.random.default_rng(0).standard_normal((2, *trained.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(model(x, training=False), trained(x, training=False), atol=1e-6)


class Boom(keras.callbacks.Callback):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        raise self.exc


class Pruned(Exception):
    pass


def test_a_failing_run_is_marked_failed_with_its_error(
    tiny_corpus: Path, data: PreparedData, tmp_path: Path
) -> None:
    cfg = config_for(tiny_corpus, tmp_path / "mlruns", "tracking.log_model=false")
    with pytest.raises(RuntimeError, match="disk full"):
        tracked_training(TASK, cfg, data, callbacks=[Boom(RuntimeError("disk full"))], verbose=0)
    client = open_store(cfg.tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["state"] == "FAILED"
    assert "disk full" in run.data.tags["error"]


def test_a_pruned_run_is_marked_and_keeps_its_curve(
    tiny_corpus: Path, data: PreparedData, tmp_path: Path
) -> None:
    cfg = config_for(tiny_corpus, tmp_path / "mlruns", "tracking.log_model=false")
    with pytest.raises(Pruned):
        tracked_training(
            TASK,
            cfg,
            data,
            callbacks=[Boom(Pruned("pruned at epoch 0"))],
            pruned=(Pruned,),
            verbose=0,
        )
    client = open_store(cfg.tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert run.info.status == "KILLED"
    assert run.data.tags["state"] == "PRUNED"
    assert len(client.get_metric_history(run.info.run_id, "epoch/val_accuracy")) == 1
