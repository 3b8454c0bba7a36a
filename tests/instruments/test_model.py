"""Built networks: the layers and shapes of each architecture's plan, the seed CNN exactly as
the spec describes it, and the conv blocks tools read."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import keras
import numpy as np
import pytest
import yaml

from nsynth_research.core.config import flatten
from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.families import NUM_CLASSES
from nsynth_research.instruments.model import (
    KERAS_LAYERS,
    FeatureBlock,
    build_model,
    embedding_model,
    feature_blocks,
)
from nsynth_research.instruments.models.plan import Kind

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "seed": [],
    "2d_filterbank": [
        "model.first_kernel=[3,32]",
        "model.first_stride=[1,16]",
        "model.kernel=[3,3]",
        "model.pool_size=[3,2]",
        "model.pool_stride=[3,2]",
    ],
    "global_average": [
        "model.first_kernel=[5,64]",
        "model.first_stride=[1,32]",
        "model.first_padding=same",
        "model.pool=average",
        "model.head=gap",
        "model.filters=[16,32]",
        "model.dense=[64]",
        "model.dropout=0.3",
        "model.batch_norm=false",
    ],
    "mlp": ["model.arch=mlp", "model.band=8", "model.dense=[64,32]", "model.dropout=0.2"],
}


def study_configs(count: int) -> list[list[str]]:
    """`count` trial configs of the default study's search space (a seeded sample of every
    combination of its model and feature choices), as override lists."""
    space = yaml.safe_load((ROOT / "experiments/default.yaml").read_text())["search_space"]
    networks = [flatten(bundle) for bundle in space["network"]["choices"].values()]
    keys = ("model.head", "model.filters", "model.dense")
    axes = [space[key]["choices"] for key in keys]
    rng = random.Random(0)
    picked = []
    for _ in range(count):
        overrides = {**rng.choice(networks), "model.dropout": rng.choice([0.0, 0.3])}
        overrides.update(zip(keys, map(rng.choice, axes), strict=True))
        picked.append([f"{key}={value}".replace(" ", "") for key, value in overrides.items()])
    return picked


PARITY = [
    *CASES.values(),
    *study_configs(12),
    # A first kernel wider than the map under same padding, strided both ways.
    ["model.first_kernel=[7,600]", "model.first_padding=same", "model.first_stride=[2,3]"],
    ["model.batch_norm=false", "model.pool=average", "model.filters=[8,8,8,8,8]"],
    ["model.arch=mlp", "model.pool=max", "model.band=513", "model.dense=[16]"],
    ["model.arch=mlp", "features.kind=logmel", "features.n_mels=64", "model.band=5"],
]


@pytest.mark.parametrize("overrides", PARITY, ids=[f"config{i}" for i in range(len(PARITY))])
def test_built_layers_are_the_plan(overrides: list[str]) -> None:
    """The Keras network is the plan the config was checked with: the same layers in the same
    order, made with the plan's arguments, each giving the shape the plan computed."""
    cfg = load_config(None, overrides)
    plan = cfg.model.plan(cfg.features.frames, cfg.features.bins)
    model = build_model(cfg.model, cfg.features)
    assert model.input_shape[1:] == plan.input
    built = model.layers[1:-1]  # between the input and the logits
    assert [layer.name for layer in built] == [spec.name for spec in plan.layers]
    for layer, spec in zip(built, plan.layers, strict=True):
        assert type(layer) is KERAS_LAYERS[spec.kind], spec.name
        assert tuple(layer.output.shape[1:]) == spec.shape, spec.name
        config = layer.get_config()
        assert {key: config[key] for key in spec.args} == spec.args, spec.name


def test_every_plan_kind_has_a_keras_layer() -> None:
    assert set(KERAS_LAYERS) == set(get_args(Kind))


@pytest.mark.parametrize("name", sorted(CASES))
def test_network_maps_a_spectrogram_to_logits_and_embedding(name: str) -> None:
    cfg = load_config(None, CASES[name])
    model = build_model(cfg.model, cfg.features)
    assert model.input_shape == (None, 251, 513, 1)
    assert model.output_shape == (None, NUM_CLASSES)
    x = np.zeros((2, 251, 513, 1), dtype=np.float32)
    logits, emb = embedding_model(model)(x, training=False)
    assert logits.shape == (2, NUM_CLASSES)
    assert emb.shape == (2, cfg.model.dense[-1])


def test_seed_network_is_the_spec_in_weight_creation_order() -> None:
    """Every weight of the seed CNN, in the order Keras creates (and seeds) them: a change here
    changes every run's initial weights."""
    cfg = load_config(ROOT / "configs/baseline.yaml")
    model = build_model(cfg.model, cfg.features)
    expected = []
    for block, (c_in, c_out, kernel) in enumerate(
        [(1, 64, (3, 513)), (64, 64, (3, 1)), (64, 128, (3, 1)), (128, 128, (3, 1))]
    ):
        expected.append((f"conv{block}/kernel", (*kernel, c_in, c_out)))  # no bias: batch norm
        for part in ("gamma", "beta", "moving_mean", "moving_variance"):
            expected.append((f"bn{block}/{part}", (c_out,)))
    for name, shape in (
        ("dense0", (3 * 128, 256)),
        ("embedding", (256, 256)),
        ("logits", (256, 11)),
    ):
        expected += [(f"{name}/kernel", shape), (f"{name}/bias", (shape[1],))]
    assert [(w.path, tuple(w.shape)) for w in model.weights] == expected


def test_seed_model_collapses_frequency() -> None:
    cfg = load_config(None)
    model = build_model(cfg.model, cfg.features)
    assert model.get_layer("conv0").output.shape[1:] == (249, 1, 64)
    # 249 -> 83 -> 27 -> 9 -> 3 frames after four (3, 1) stride-3 pools; 3 x 128 flattened.
    assert model.get_layer("flatten").output.shape[-1] == 3 * 128


@pytest.mark.parametrize(
    ("overrides", "activations"),
    [
        (["model.filters=[4,8,8]"], ["relu0", "relu1", "relu2"]),
        (["model.filters=[4,8]", "model.batch_norm=false"], ["relu0", "relu1"]),
    ],
)
def test_feature_blocks_pair_each_conv_with_its_activation(
    overrides: list[str], activations: list[str]
) -> None:
    cfg = load_config(None, [*overrides, "model.dense=[8]"])
    blocks = feature_blocks(build_model(cfg.model, cfg.features))
    filters = [4, 8, 8]
    assert blocks == [FeatureBlock(f"conv{i}", a, filters[i]) for i, a in enumerate(activations)]


def test_mlp_has_no_feature_blocks() -> None:
    cfg = load_config(None, CASES["mlp"])
    assert feature_blocks(build_model(cfg.model, cfg.features)) == []


@pytest.mark.parametrize(("pool", "reduce"), [("average", np.mean), ("max", np.max)])
def test_mlp_reads_each_band_summarised_over_the_note(pool: str, reduce: Callable) -> None:
    """The dense layers see each 27-bin band's mean (max) over all frames and bins."""
    cfg = load_config(None, ["model.arch=mlp", f"model.pool={pool}", "model.band=27"])
    model = build_model(cfg.model, cfg.features)
    x = np.random.default_rng(0).normal(size=(2, 251, 513, 1)).astype(np.float32)
    got = keras.Model(model.input, model.get_layer("flatten").output)(x).numpy()
    bands = reduce(x[..., 0].reshape(2, 251, 19, 27), axis=(1, 3))
    np.testing.assert_allclose(got, bands, rtol=1e-5, atol=1e-5)


def test_mixed_precision_keeps_float32_logits() -> None:
    cfg = load_config(None, ["model.filters=[8,8]", "model.dense=[16,16]"])
    model = build_model(cfg.model, cfg.features, precision="mixed_float16")
    assert model.get_layer("conv0").compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32"


def test_guide_shows_the_real_example() -> None:
    """docs/adding-a-model.md quotes the mlp module in full and its registry line."""
    guide = (ROOT / "docs/adding-a-model.md").read_text()
    module = (ROOT / "nsynth_research/instruments/models/mlp.py").read_text()
    registry = (ROOT / "nsynth_research/instruments/models/registry.py").read_text()
    blocks = guide.split("```python\n")[1:]
    assert blocks[0].split("```")[0] == module
    for block in blocks[1:]:
        assert block.split("```")[0] in registry
