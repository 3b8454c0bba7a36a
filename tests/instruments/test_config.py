"""The config schema: defaults are the seed model, and every bad value is named by its key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nsynth_research.core.config import parse_overrides, validate
from nsynth_research.core.errors import ConfigError
from nsynth_research.instruments.config import InstrumentConfig, load_config, load_corpus_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_baseline_yaml_is_the_seed_model() -> None:
    cfg = load_config(CONFIGS / "baseline.yaml")
    m = cfg.model
    assert m.first_kernel == (3, 513) and m.first_padding == "valid"
    assert m.kernel == (3, 1) and m.filters == (64, 64, 128, 128)
    assert m.pool == "max" and m.pool_size == (3, 1) and m.pool_stride == (3, 1)
    assert m.dense == (256, 256) and not m.global_pool
    assert cfg.optimizer.name == "adadelta" and cfg.optimizer.learning_rate == 0.01
    assert cfg.training.batch_size == 32
    assert (cfg.features.frames, cfg.features.bins) == (251, 513)


def test_overrides_parse_yaml_values() -> None:
    cfg = load_config(
        CONFIGS / "baseline.yaml",
        [
            "model.first_kernel=[3,3]",
            "optimizer.name=adam",
            "training.epochs=2",
            "model.dropout=0.25",
        ],
    )
    assert cfg.model.first_kernel == (3, 3)
    assert cfg.optimizer.name == "adam"
    assert cfg.training.epochs == 2
    assert cfg.model.dropout == 0.25


@pytest.mark.parametrize(
    ("override", "key", "phrase"),
    [
        ("modle.dropout=0.1", "modle", "unknown key"),
        ("model.dropuot=0.1", "model.dropuot", "unknown key"),
        ("model.dropout=1.5", "model.dropout", "less than 1"),
        ("optimizer.name=lion", "optimizer.name", "adadelta"),
        ("training.batch_size=many", "training.batch_size", "integer"),
        ("model.first_kernel=[3,600]", "model.first_kernel", "exceeds the 513"),
        ("model.filters=[64,64,64,64,64,64]", "model.pool_size", "shrinks time below 1"),
        ("model.filters=[]", "model.filters", "non-empty"),
    ],
)
def test_bad_values_name_their_key(override: str, key: str, phrase: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(CONFIGS / "baseline.yaml", [override])
    message = str(err.value)
    assert key in message
    assert phrase in message


def test_malformed_override_and_missing_file() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["model.dropout"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Path("no/such/config.yaml"))


def test_resolved_config_round_trips_through_yaml() -> None:
    cfg = load_config(
        CONFIGS / "baseline.yaml", ["model.first_kernel=[5,32]", "model.first_stride=[1,16]"]
    )
    again = validate(yaml.safe_load(cfg.to_yaml()), "config", InstrumentConfig)
    assert again == cfg
    assert isinstance(again, InstrumentConfig)
    assert cfg.flat()["model.first_kernel"] == [5, 32]


def test_corpus_config_validates() -> None:
    corpus = load_corpus_config(CONFIGS / "corpus.yaml")
    assert corpus.size == "default"
    with pytest.raises(ConfigError, match="size"):
        load_corpus_config(CONFIGS / "corpus.yaml", ["size=huge"])
