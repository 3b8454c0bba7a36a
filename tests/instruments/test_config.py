"""The config schema: defaults are the seed model, and every bad value is named by its key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nsynth_research.core.config import parse_overrides, validate
from nsynth_research.core.errors import ConfigError
from nsynth_research.instruments.config import InstrumentConfig, load_config, load_corpus_config
from nsynth_research.instruments.models.cnn import CnnConfig
from nsynth_research.instruments.models.mlp import MlpConfig
from nsynth_research.instruments.models.registry import ARCHITECTURES

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_baseline_yaml_is_the_seed_model() -> None:
    cfg = load_config(CONFIGS / "baseline.yaml")
    m = cfg.model
    assert m.first_kernel == (3, 513) and m.first_padding == "valid"
    assert m.kernel == (3, 1) and m.filters == (64, 64, 128, 128)
    assert m.pool == "max" and m.pool_size == (3, 1) and m.pool_stride == (3, 1)
    assert m.arch == "cnn" and m.head == "flatten" and m.dense == (256, 256)
    assert cfg.optimizer.name == "adadelta" and cfg.optimizer.learning_rate == 0.01
    assert cfg.training.batch_size == 32
    assert (cfg.features.frames, cfg.features.bins) == (251, 513)


def test_mlp_yaml_is_the_baseline_but_for_the_model() -> None:
    mlp, seed = load_config(CONFIGS / "mlp.yaml"), load_config(CONFIGS / "baseline.yaml")
    assert isinstance(mlp.model, MlpConfig) and mlp.model == MlpConfig()
    assert mlp.model_copy(update={"model": seed.model}) == seed


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
    ("override", "line"),
    [
        ("modle.dropout=0.1", "modle: unknown key"),
        ("model.dropuot=0.1", "model.dropuot: unknown key for model.arch cnn, whose keys are"),
        ("model.dropout=1.5", "model.dropout: Input should be less than 1 (got 1.5)"),
        ("optimizer.name=lion", "optimizer.name: Input should be 'adadelta', "),
        ("training.batch_size=many", "training.batch_size: Input should be a valid integer"),
        (
            "model.first_kernel=[3,600]",
            "(top level): model.first_kernel frequency size 600 exceeds the 513 frequency bins",
        ),
        (
            "model.filters=[64,64,64,64,64,64]",
            "(top level): model.pool_size [3, 1] shrinks time below 1 at layer pool5 (time 1)",
        ),
        ("model.filters=[]", "model: model.filters must be non-empty positive integers"),
        ("model.arch=rnn", "model.arch: unknown architecture; model.arch is one of cnn, mlp"),
        ("model.global_pool=maybe", "model: model.global_pool must be true or false"),
    ],
)
def test_bad_values_name_their_key(override: str, line: str) -> None:
    """Each error is one line, located at the key (or at the section or config whose check
    failed, naming the key)."""
    with pytest.raises(ConfigError) as err:
        load_config(CONFIGS / "baseline.yaml", [override])
    lines = str(err.value).splitlines()
    assert lines[0] == f"invalid {CONFIGS / 'baseline.yaml'}:"
    assert len(lines) == 2 and lines[1].startswith(f"  {line}"), lines


def test_override_without_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["model.dropout"])


def test_missing_config_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"config file not found: no/such/config\.yaml"):
        load_config(Path("no/such/config.yaml"))


@pytest.mark.parametrize(
    ("base", "overrides"),
    [
        (CONFIGS / "baseline.yaml", ["model.first_kernel=[5,32]", "model.first_stride=[1,16]"]),
        (None, ["model.arch=mlp", "model.band=4", "model.dense=[32]"]),
    ],
)
def test_resolved_config_round_trips_through_yaml(base: Path | None, overrides: list[str]) -> None:
    cfg = load_config(base, overrides)
    again = validate(yaml.safe_load(cfg.to_yaml()), "config", InstrumentConfig)
    assert isinstance(again, InstrumentConfig)
    assert again == cfg


def test_arch_selects_the_model_section() -> None:
    assert isinstance(load_config(None).model, CnnConfig)  # no arch: the seed CNN
    mlp = load_config(None, ["model.arch=mlp", "model.band=4"]).model
    assert isinstance(mlp, MlpConfig) and mlp.band == 4
    assert load_config(None, ["model.arch=mlp"]).flat()["model.arch"] == "mlp"


def test_each_registered_architecture_is_selected_by_its_name() -> None:
    for name, section in ARCHITECTURES.items():
        assert section().arch == name
        assert type(load_config(None, [f"model.arch={name}"]).model) is section


def test_keys_of_another_architecture_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model.arch=mlp", "model.filters=[8]", "model.head=gap"])
    lines = str(err.value).splitlines()[1:]
    assert lines[0].startswith(
        "  model.filters: unknown key for model.arch mlp, whose keys are arch, pool, band,"
    )
    assert lines[1] == "  model.head: unknown key for model.arch mlp (got 'gap')"


def test_mlp_band_must_fit_the_features() -> None:
    with pytest.raises(ConfigError, match=r"model.band \[251, 600\] shrinks frequency below 1"):
        load_config(None, ["model.arch=mlp", "model.band=600"])
    load_config(None, ["model.arch=mlp", "model.band=513"])


@pytest.mark.parametrize(
    ("global_pool", "head", "built"),
    [
        (True, "flatten", "gap"),
        (False, "flatten", "flatten"),
        (True, "gmp", "gap"),
        (False, "gmp", "gmp"),
    ],
)
def test_logged_global_pool_is_read_as_the_head(
    tmp_path: Path, global_pool: bool, head: str, built: str
) -> None:
    """A logged config with `global_pool` (and no `arch`) reproduces the network its run
    trained: global_pool true built a global-average head whatever `head` said."""
    logged = load_config(CONFIGS / "baseline.yaml", [f"model.head={head}"]).to_dict()
    del logged["model"]["arch"]
    logged["model"]["global_pool"] = global_pool
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(logged))
    cfg = load_config(path)
    assert cfg.model.head == built
    assert cfg == load_config(CONFIGS / "baseline.yaml", [f"model.head={built}"])
    assert "global_pool" not in cfg.to_dict()["model"]


def test_corpus_config_loads() -> None:
    assert load_corpus_config(CONFIGS / "corpus.yaml").size == "default"


def test_corpus_size_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"  size: Input should be .* \(got 'huge'\)"):
        load_corpus_config(CONFIGS / "corpus.yaml", ["size=huge"])
