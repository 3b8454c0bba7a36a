"""What the MLflow UI shows: clean searched values, study settings as params, and a
learning-rate chart only when a schedule moves the rate (issue 16)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from nsynth_research.core.describe import search_params, study_params
from nsynth_research.core.runs import EpochLogger
from nsynth_research.core.space import param_overrides
from nsynth_research.core.study_config import ParamSpec, StudyConfig

SPACE = {
    "model.dropout": ParamSpec(type="float", low=0.0, high=0.5, step=0.1),
    "optimizer": ParamSpec(
        type="categorical",
        choices={"adam_1e-3": {"optimizer.name": "adam", "optimizer.learning_rate": 0.001}},
    ),
}


def test_searched_floats_reach_the_config_without_binary_noise() -> None:
    params = {"model.dropout": 0.30000000000000004, "optimizer": "adam_1e-3"}
    assert param_overrides(SPACE, params)["model.dropout"] == 0.3
    assert search_params(params) == {
        "search.model.dropout": "0.3",
        "search.optimizer": "adam_1e-3",
    }


def test_the_parent_run_gets_the_study_settings_as_params() -> None:
    study = StudyConfig(name="s", n_trials=4, search_space=SPACE)
    params = study_params(study)
    assert params["n_trials"] == "4" and params["sampler.name"] == "tpe"
    assert params["space.model.dropout"] == "float 0.0..0.5 step 0.1"
    assert params["space.optimizer"] == "categorical: adam_1e-3"


class Client:
    def __init__(self) -> None:
        self.logged: list[tuple[str, float, int]] = []

    def log_batch(self, run_id: str, metrics: list[Any]) -> None:
        self.logged += [(m.key, m.value, m.step) for m in metrics]


def run_epochs(rates: list[float]) -> list[tuple[str, float, int]]:
    client = Client()
    logger = EpochLogger(client, "run", {"val_accuracy": "val_accuracy"})  # type: ignore[arg-type]
    optimizer = SimpleNamespace(learning_rate=rates[0])
    logger.set_model(SimpleNamespace(optimizer=optimizer))
    for epoch, rate in enumerate(rates):
        optimizer.learning_rate = rate
        logger.on_epoch_end(epoch, {"val_accuracy": 0.5})
    return client.logged


def test_epochs_are_logged_from_1_and_a_constant_rate_is_not_charted() -> None:
    logged = run_epochs([0.01, 0.01, 0.01])
    curve = "epoch/val_accuracy"  # the plain name is the kept epoch's value alone
    assert logged == [(curve, 0.5, 1), (curve, 0.5, 2), (curve, 0.5, 3)]


def test_a_scheduled_rate_is_charted_whole_from_its_first_change() -> None:
    logged = run_epochs([0.01, 0.01, 0.005, 0.001])
    rates = [(step, value) for key, value, step in logged if key == "epoch/learning_rate"]
    assert rates == [(1, 0.01), (2, 0.01), (3, 0.005), (4, 0.001)]
