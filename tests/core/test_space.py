"""The study definition: search spaces map onto real config keys, and the baseline enqueues."""

from __future__ import annotations

from pathlib import Path

import pytest

from nsynth_research.core.errors import ConfigError
from nsynth_research.core.space import (
    base_config,
    baseline_params,
    check_search_space,
    decode_choice,
    encode_choice,
    param_overrides,
    trial_config,
)
from nsynth_research.core.study_config import load_study_config
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.task import InstrumentTask

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "experiments" / "default.yaml"


def test_default_experiment_is_valid_and_enqueues_the_seed() -> None:
    study = load_study_config(DEFAULT, [f"base_config={REPO / 'configs/baseline.yaml'}"])
    base = base_config(study, InstrumentConfig)
    check_search_space(study, base)
    params = baseline_params(study, base)
    assert params["network"] == "seed_stft"
    assert params["optimizer"] == "adadelta_0.01"
    assert params["augment"] == "none" and params["model.head"] == "flatten"
    again = trial_config(base, study.search_space, params)
    # The enqueued point is exactly the base config: trial 0 is the seed model.
    assert again == base
    assert base.tracking.experiment == "study-default"
    assert base.training.epochs == 8
    # The study's `objective:` is written into the config every trial starts from.
    assert base.training.objective == "val_transfer_accuracy"
    assert base.data.train_libraries == ("Merlin",)


def test_trial_params_set_bundled_keys() -> None:
    study = load_study_config(DEFAULT, [f"base_config={REPO / 'configs/baseline.yaml'}"])
    base = base_config(study, InstrumentConfig)
    params = baseline_params(study, base) | {
        "network": "mel64_2d",
        "model.filters": encode_choice([32, 64, 64, 128]),
        "optimizer": "adam_1e-3",
    }
    cfg = trial_config(base, study.search_space, params)
    assert cfg.features.kind == "logmel" and cfg.features.n_mels == 64
    assert cfg.model.first_kernel == (5, 5) and cfg.model.first_stride == (2, 2)
    assert cfg.model.kernel == (3, 3)
    assert cfg.model.filters == (32, 64, 64, 128)
    assert cfg.optimizer.name == "adam" and cfg.optimizer.learning_rate == 0.001


def test_choices_round_trip_through_optuna_scalars() -> None:
    for value in (3, 0.5, "max", None, True, [3, 513], {"a": 1}):
        assert decode_choice(encode_choice(value)) == value


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(f"name: t\nbase_config: {REPO / 'configs/baseline.yaml'}\n{body}")
    return path


def test_the_objective_is_set_once_and_never_searched(tmp_path: Path) -> None:
    space = "search_space:\n  model.dropout: {type: categorical, choices: [0.0]}\n"
    both = "objective: val_accuracy\noverrides: {training.objective: val_transfer_accuracy}\n"
    with pytest.raises(ConfigError, match="disagree; set the objective once"):
        load_study_config(write(tmp_path, both + space))
    via_overrides = "overrides: {training.objective: val_transfer_accuracy}\n"
    study = load_study_config(write(tmp_path, via_overrides + space))
    assert base_config(study, InstrumentConfig).training.objective == "val_transfer_accuracy"
    searched = "search_space:\n  training.objective: {type: categorical, choices: [val_accuracy]}\n"
    study = load_study_config(write(tmp_path, searched))
    with pytest.raises(ConfigError, match=r"'training\.objective' cannot vary per trial"):
        check_search_space(study, base_config(study, InstrumentConfig))


def test_unknown_search_key_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path, "search_space:\n  model.frist_kernel: {type: categorical, choices: [1]}\n"
    )
    study = load_study_config(path)
    with pytest.raises(ConfigError, match="frist_kernel"):
        check_search_space(study, base_config(study, InstrumentConfig))


def test_impossible_choice_fails_before_training(tmp_path: Path) -> None:
    body = "search_space:\n  model.filters: {type: categorical, choices: [[8, 8, 8, 8, 8, 8]]}\n"
    study = load_study_config(write(tmp_path, body))
    with pytest.raises(ConfigError, match=r"(?s)search_space.model.filters .*shrinks time"):
        check_search_space(study, base_config(study, InstrumentConfig))


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ("search_space:\n  model.dropout: {type: float, low: 0.5, high: 0.1}\n", "low"),
        ("search_space:\n  model.dropout: {type: categorical}\n", "choices"),
        (
            "n_trials: null\nsearch_space:\n  model.dropout: {type: float, low: 0, high: 0.5}\n",
            "never ends",
        ),
        ("search_space: {}\n", "search_space"),
        (
            "sampler: {name: grid}\nsearch_space:\n  model.dropout: {type: float, high: 1}\n",
            "sampler.name",
        ),
    ],
)
def test_bad_study_files_are_named(tmp_path: Path, body: str, phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        load_study_config(write(tmp_path, body))


def test_baseline_outside_the_space_is_an_error(tmp_path: Path) -> None:
    body = "search_space:\n  optimizer.name: {type: categorical, choices: [adam, sgd]}\n"
    study = load_study_config(write(tmp_path, body))
    with pytest.raises(ConfigError, match="cannot be enqueued"):
        baseline_params(study, base_config(study, InstrumentConfig))


@pytest.mark.parametrize(
    ("body", "key"),
    [
        # features.* is searchable: the instrument task prepares features per trial.
        (
            "search_space:\n  data.cache_dtype: {type: categorical, choices: [float32, float16]}\n",
            "cache_dtype",
        ),
        (
            "search_space:\n  setup:\n    type: categorical\n    choices:\n"
            "      a: {model.dropout: 0.1, data.max_notes_per_split: 10}\n"
            "      b: {model.dropout: 0.2}\n",
            "data.max_notes_per_split",
        ),
    ],
)
def test_study_fixed_sections_cannot_be_searched(tmp_path: Path, body: str, key: str) -> None:
    study = load_study_config(write(tmp_path, body))
    fixed = InstrumentTask.study_fixed_sections
    with pytest.raises(ConfigError, match=rf"{key}.*cannot vary per trial"):
        check_search_space(study, base_config(study, InstrumentConfig), fixed)


def test_an_unknown_bundle_label_is_refused(tmp_path: Path) -> None:
    body = (
        "search_space:\n  opt:\n    type: categorical\n    choices:\n"
        "      adam: {optimizer.name: adam}\n"
    )
    study = load_study_config(write(tmp_path, body))
    assert param_overrides(study.search_space, {"opt": "adam"}) == {"optimizer.name": "adam"}
    with pytest.raises(ConfigError, match="unknown choice 'sgd'"):
        param_overrides(study.search_space, {"opt": "sgd"})
