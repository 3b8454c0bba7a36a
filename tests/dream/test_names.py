"""Bad family or layer names, and bad dream config keys: one clear line, exit code 2."""

from __future__ import annotations

import pytest

from nsynth_research.cli import main
from nsynth_research.core.errors import ConfigError, UserError
from nsynth_research.dream.config import check_families, load_dream_config
from nsynth_research.dream.layers import check_layer, layer_names
from nsynth_research.instruments.config import FeatureConfig, ModelConfig
from nsynth_research.instruments.families import FAMILIES
from nsynth_research.instruments.model import build_model, feature_blocks


def test_bad_family_is_one_line_listing_the_valid_ones(capsys, tmp_path) -> None:
    code = main(["dream", "--family", "flute,kazoo", "--store", str(tmp_path / "mlruns")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "\n" not in err
    assert "'kazoo'" in err and all(f in err for f in FAMILIES)


def test_good_families_come_back_in_label_order() -> None:
    assert check_families(("vocal", "bass")) == ("bass", "vocal")
    assert check_families(()) == FAMILIES


def test_bad_layer_is_one_line_listing_the_valid_ones() -> None:
    model = build_model(ModelConfig(filters=(4, 4), dense=(8,)), FeatureConfig())
    with pytest.raises(UserError) as caught:
        check_layer(model, "conv9")
    message = str(caught.value)
    assert "\n" not in message and "'conv9'" in message
    assert all(name in message for name in layer_names(model))
    assert "conv0" in message and "logits" in message and "spectrogram" not in message


def test_default_layer_is_the_last_conv_relu() -> None:
    model = build_model(ModelConfig(filters=(4, 4, 4), dense=(8,)), FeatureConfig())
    assert check_layer(model, None) == "relu2"
    assert check_layer(model, "pool1") == "pool1"


def test_blocks_are_found_through_the_graph_whatever_the_names() -> None:
    import keras
    from keras import layers

    inputs = keras.Input((32, 16, 1))
    x = layers.Conv2D(3, 3, name="alpha")(inputs)  # conv -> norm -> dropout -> activation
    x = layers.BatchNormalization(name="beta")(x)
    x = layers.Dropout(0.1, name="gamma")(x)
    x = layers.Activation("tanh", name="delta")(x)
    x = layers.Conv2D(4, 3, activation="relu", name="conv_relu_inside")(x)
    x = layers.Conv2D(5, 3, name="bare")(x)  # no activation follows: read the conv
    x = layers.MaxPooling2D(name="relu_in_name_only")(x)
    x = layers.ReLU(name="late")(x)
    out = layers.Dense(2)(layers.Flatten()(x))
    blocks = feature_blocks(keras.Model(inputs, out))
    assert [(b.conv, b.readout, b.filters) for b in blocks] == [
        ("alpha", "delta", 3),
        ("conv_relu_inside", "conv_relu_inside", 4),
        ("bare", "bare", 5),
    ]


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"classes\.stepz: unknown key"):
        load_dream_config(None, ["classes.stepz=3"])
    with pytest.raises(ConfigError, match=r"deepdream\.octaves"):
        load_dream_config(None, ["deepdream.octaves=0"])
    config = load_dream_config(None, ["seed=3", "families=[reed]", "classes.steps=5"])
    assert (config.seed, config.families, config.classes.steps) == (3, ("reed",), 5)


def test_a_convolution_free_model_dreams_at_the_layer_feeding_the_logits() -> None:
    import numpy as np
    import tensorflow as tf

    from nsynth_research.dream.objectives import class_objective
    from nsynth_research.instruments.models.mlp import MlpConfig

    model = build_model(MlpConfig(dense=(8, 8)), FeatureConfig())
    assert feature_blocks(model) == []
    assert check_layer(model, None) == "embedding"
    x = tf.constant(np.zeros((2, 251, 513), np.float32))
    score, watch = class_objective(model, np.array([0, 3]), "contrast")(x)
    assert score.shape == (2,) and watch["target_prob"].shape == (2,)
