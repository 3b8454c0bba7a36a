"""Gradient ascent on a tiny untrained model: it climbs, it is deterministic, and the fast
first-conv path computes the model's own function."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from nsynth_research.dream.ascent import Bounds, ascend, blur
from nsynth_research.dream.config import AscentConfig
from nsynth_research.dream.objectives import channel_objective, class_objective, view
from nsynth_research.instruments.config import FeatureConfig, ModelConfig
from nsynth_research.instruments.features.stats import FeatureStats
from nsynth_research.instruments.model import build_model

FEATURES = FeatureConfig()
TINY = ModelConfig(filters=(4, 4), dense=(8, 8))
QUICK = AscentConfig(steps=6, octaves=2, learning_rate=0.1)


@pytest.fixture(scope="module")
def model():
    tf.keras.utils.set_random_seed(0)
    return build_model(TINY, FEATURES)


@pytest.fixture(scope="module")
def bounds() -> Bounds:
    shape = (FEATURES.frames, FEATURES.bins)
    stats = FeatureStats.from_arrays(np.full(shape, 2.0), np.ones(shape), 1, FEATURES)
    return Bounds.of(stats, FEATURES)


def _start(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.1 * rng.standard_normal((n, FEATURES.frames, FEATURES.bins)).astype(np.float32)


def test_ascent_raises_the_target_logit(model, bounds: Bounds) -> None:
    targets = np.array([0, 5, 9])
    objective = class_objective(model, targets)
    start = _start(len(targets))
    before = objective(tf.constant(start)).numpy()
    out = ascend(objective, start, QUICK, bounds, np.random.default_rng(0))
    after = objective(tf.constant(out)).numpy()
    assert out.shape == start.shape
    assert np.all(after > before), (before, after)
    assert np.all(out >= bounds.low - 1e-6) and np.all(out <= bounds.high + 1e-6)


def test_ascent_is_deterministic_for_a_seed(model, bounds: Bounds) -> None:
    objective = channel_objective(model, "relu1", np.array([0, 3]))
    runs = [ascend(objective, _start(2), QUICK, bounds, np.random.default_rng(7)) for _ in "ab"]
    np.testing.assert_array_equal(*runs)


@pytest.mark.parametrize(
    "cfg",
    [TINY, ModelConfig(first_kernel=(3, 3), first_padding="same", filters=(4, 4), dense=(8,))],
    ids=["full-height first conv (fast path)", "2-D first conv (Keras path)"],
)
@pytest.mark.parametrize("layer", ["conv0", "relu1", "logits"])
def test_view_is_the_models_own_function(cfg: ModelConfig, layer: str) -> None:
    net = build_model(cfg, FEATURES)
    x = tf.constant(_start(2, seed=3))
    reference = tf.keras.Model(net.input, net.get_layer(layer).output)(x[..., None])
    np.testing.assert_allclose(view(net, layer)(x).numpy(), reference.numpy(), atol=1e-4)


def test_blur_keeps_a_constant_image_and_smooths_an_impulse() -> None:
    flat = tf.ones((1, 9, 11, 1))
    np.testing.assert_allclose(blur(flat, 1.0).numpy(), flat.numpy(), atol=1e-6)
    impulse = np.zeros((1, 9, 11, 1), np.float32)
    impulse[0, 4, 5, 0] = 1.0
    out = blur(tf.constant(impulse), 1.0).numpy()
    assert out[0, 4, 5, 0] < 1.0 and out[0, 4, 6, 0] > 0 and abs(out.sum() - 1) < 1e-5
