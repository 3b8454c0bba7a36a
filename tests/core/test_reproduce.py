"""Reproducing a logged run from its config alone gives the same validation accuracy, and
the objective it kept its best epoch by comes from that config (a tag only for old runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml

from nsynth_research.core.config import ExperimentConfig, TrackingConfig, TrainingConfig
from nsynth_research.core.errors import ConfigError, UserError
from nsynth_research.core.reproduce import REPRODUCES_TAG, logged_run_config, reproduce
from nsynth_research.core.runs import CONFIG_ARTIFACT, OBJECTIVE_TAG, tracked_training
from nsynth_research.core.task import FitResult, Objective, with_objective
from nsynth_research.core.tracking import open_store, tracked_run
from nsynth_research.tasks import task_for


def logged_objective(run_id: str) -> Any:
    """The `training.objective` of a run's logged config.yaml, as written."""
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/{CONFIG_ARTIFACT}")
    return yaml.safe_load(text)["training"]["objective"]


@pytest.mark.slow
def test_reproduction_is_identical_and_tagged(tiny_run) -> None:
    config, run_id = tiny_run
    said: list[str] = []
    result = reproduce(task_for, run_id, config.tracking, announce=said.append)
    assert result.identical
    original, again = result.rows[0][1], result.rows[0][2]
    assert original == again
    assert [r[1] for r in result.rows] == pytest.approx([r[2] for r in result.rows])
    run = open_store(config.tracking).get_run(result.run_id)
    assert run.data.tags[REPRODUCES_TAG] == run_id
    assert not any("data fingerprint" in w for w in said)
    assert "identical" in result.format_table()
    # Trained with the default objective: both logged configs name it.
    assert logged_objective(run_id) == logged_objective(result.run_id) == "val_accuracy"


@pytest.mark.slow
def test_unknown_run_and_run_without_config(tiny_run) -> None:
    config, _ = tiny_run
    with pytest.raises(UserError, match="no run 'feedfacefeedface'"):
        reproduce(task_for, "feedfacefeedface", config.tracking)
    with tracked_run(config.tracking, run_name="bare") as bare:
        mlflow.log_metric("x", 1.0)
    with pytest.raises(UserError, match=r"has no config\.yaml"):
        reproduce(task_for, bare.info.run_id, config.tracking)


class FakeConfig(ExperimentConfig):
    task: str = "fake"


@dataclass(frozen=True)
class FakeData:
    fingerprint: str = "fake-data"


class FakeTask:
    """A task with two objectives whose fit is instant and deterministic, and scores each
    objective differently: the number a run reports says which objective it used."""

    name = "fake"
    config_type = FakeConfig
    objective = Objective("val_a", "maximize", "a")
    objectives = {"val_a": objective, "val_b": Objective("val_b", "maximize", "b")}  # noqa: RUF012
    epoch_metrics = {"val_loss": "val_loss"}  # noqa: RUF012
    study_fixed_sections = ()
    SCORES = {"val_a": 0.25, "val_b": 0.75}  # noqa: RUF012

    def prepare(self, config: FakeConfig, *, progress: bool = True) -> FakeData:
        return FakeData()

    def fit(self, config: FakeConfig, data: FakeData, **_: Any) -> FitResult:
        value = self.SCORES[self.objective.metric]
        return FitResult(
            model=None,
            history={"val_loss": [0.5, 0.4], self.objective.metric: [value / 2, value]},
            best_epoch=1,
            epochs_run=2,
            seconds=0.0,
            objective=value,
            metrics={f"best_{self.objective.metric}": value, "best_epoch": 1.0, "epochs_run": 2.0},
        )

    def log_inputs(self, config: FakeConfig, data: FakeData) -> dict[str, str]:
        return {"data_fingerprint": data.fingerprint}

    def log_result(self, config: FakeConfig, result: FitResult) -> None:
        mlflow.log_metric("epoch/val_loss", result.history["val_loss"][-1], step=2)


def fake_task_for(tree: dict[str, Any]) -> FakeTask:
    return FakeTask()


def fake_config(tmp_path: Path, objective: str | None) -> FakeConfig:
    return FakeConfig(
        training=TrainingConfig(objective=objective),
        tracking=TrackingConfig(store=tmp_path / "mlruns", experiment="fake"),
    )


def test_objective_comes_from_the_logged_config_not_the_tag(tmp_path: Path) -> None:
    config = fake_config(tmp_path, "val_b")
    task = with_objective(FakeTask(), config.training.objective)
    run_id = tracked_training(task, config, FakeData(), verbose=0).run_id
    assert logged_objective(run_id) == "val_b"
    client = open_store(config.tracking)
    # The tag is descriptive only: a wrong one must not change what is re-created.
    client.set_tag(run_id, OBJECTIVE_TAG, "val_a")
    result = reproduce(fake_task_for, run_id, config.tracking, announce=lambda _: None)
    assert result.rows[0] == ("val_b", 0.75, 0.75)
    assert result.identical
    assert logged_objective(result.run_id) == "val_b"


def test_a_run_logged_before_the_config_held_the_objective_falls_back_to_its_tag(
    tmp_path: Path,
) -> None:
    config = fake_config(tmp_path, None)
    old = config.to_dict()
    del old["training"]["objective"]  # what configs logged before this field look like
    with tracked_run(config.tracking, run_name="old") as run:
        mlflow.log_text(yaml.safe_dump(old), CONFIG_ARTIFACT)
        mlflow.set_tag(OBJECTIVE_TAG, "val_b")
        mlflow.log_metric("best_val_b", 0.75)
    client = open_store(config.tracking)
    task, logged = logged_run_config(fake_task_for, client, run.info.run_id)
    assert task.objective.metric == logged.training.objective == "val_b"
    result = reproduce(fake_task_for, run.info.run_id, config.tracking, announce=lambda _: None)
    assert result.rows[0] == ("val_b", 0.75, 0.75)
    # The reproduction is a new-style run: its config names the objective.
    assert logged_objective(result.run_id) == "val_b"


def test_default_objective_is_written_out_and_a_mismatch_is_refused(tmp_path: Path) -> None:
    run_id = tracked_training(FakeTask(), fake_config(tmp_path, None), FakeData()).run_id
    assert logged_objective(run_id) == "val_a"
    # A task bound from another config than the one logged would log a config that
    # re-creates a different run: refused before any run is opened.
    with pytest.raises(ValueError, match="bound to 'val_a'"):
        tracked_training(FakeTask(), fake_config(tmp_path, "val_b"), FakeData())
    with pytest.raises(ConfigError, match=r"^training\.objective: 'val_c' .* offers val_a, val_b$"):
        with_objective(FakeTask(), "val_c")


def test_runs_record_their_environment_and_reproduce_names_what_changed(tiny_run) -> None:
    from nsynth_research.core.environment import LOCK_TAG, VERSIONS_TAG, package_versions
    from nsynth_research.core.reproduce import version_warnings
    from nsynth_research.core.tracking import code_version

    config, run_id = tiny_run
    tags = open_store(config.tracking).get_run(run_id).data.tags
    now = code_version()
    assert tags[LOCK_TAG] == now[LOCK_TAG]
    assert tags[VERSIONS_TAG] == now[VERSIONS_TAG]
    assert f"keras=={package_versions()['keras']}" in tags[VERSIONS_TAG].split()
    older = {**tags, VERSIONS_TAG: tags[VERSIONS_TAG].replace("keras==", "keras==0.0.0+")}
    said = version_warnings(older, tags["data_fingerprint"])
    assert f"package versions differ: keras 0.0.0+{package_versions()['keras']} -> " in said[-1]
