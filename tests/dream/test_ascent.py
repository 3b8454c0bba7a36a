"""Gradient ascent on a tiny untrained model: it climbs, it is deterministic, and the fast
first-conv path computes the model's own function."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from nsynth_research.dream.ascent import Bounds, ascend, blur
from nsynth_research.dream.config import AscentConfig
from nsynth_research.dream.objectives import channel_objective, class_objective, view, views
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
    return Bounds.of(stats, FEATURES, frame_energy=None)


def _start(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.1 * rng.standard_normal((n, FEATURES.frames, FEATURES.bins)).astype(np.float32)


@pytest.mark.parametrize("kind", ["logit", "contrast", "log_softmax", "probability"])
def test_ascent_raises_the_target_score(model, bounds: Bounds, kind: str) -> None:
    targets = np.array([0, 5, 9])
    objective = class_objective(model, targets, kind)
    start = _start(len(targets))
    before = objective(tf.constant(start))[0].numpy()
    climbed = ascend(objective, start, QUICK, bounds, np.random.default_rng(0))
    after = objective(tf.constant(climbed.x))[0].numpy()
    assert climbed.x.shape == start.shape
    assert np.all(after > before), (before, after)
    assert np.all(climbed.x >= bounds.low - 1e-6) and np.all(climbed.x <= bounds.high + 1e-6)
    steps = QUICK.steps * QUICK.octaves
    for name in ("score", "target_logit", "target_prob", "rival_logit"):
        assert climbed.curves[name].shape == (steps, 3)


def test_ascent_is_deterministic_for_a_seed(model, bounds: Bounds) -> None:
    objective = channel_objective(model, [("relu1", 0), ("relu0", 3)])
    runs = [ascend(objective, _start(2), QUICK, bounds, np.random.default_rng(7)) for _ in "ab"]
    np.testing.assert_array_equal(runs[0].x, runs[1].x)
    np.testing.assert_array_equal(runs[0].curves["score"], runs[1].curves["score"])


def test_scores_are_what_their_names_say(model) -> None:
    x = tf.constant(_start(3, seed=5))
    z = view(model, "logits")(x).numpy().astype(np.float64)
    targets = np.array([1, 4, 10])
    rows = np.arange(3)
    log_p = z[rows, targets] - np.log(np.exp(z).sum(axis=1))
    others = (z.sum(axis=1) - z[rows, targets]) / 10
    expected = {
        "logit": z[rows, targets],
        "contrast": z[rows, targets] - others,
        "log_softmax": log_p,
        "probability": np.exp(log_p),
    }
    for kind, want in expected.items():
        score, watch = class_objective(model, targets, kind)(x)
        np.testing.assert_allclose(score.numpy(), want, rtol=1e-4, atol=1e-5)
    masked = z.copy()
    masked[rows, targets] = -np.inf
    np.testing.assert_allclose(watch["rival_logit"].numpy(), masked.max(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(watch["rival"].numpy(), masked.argmax(axis=1))


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
    both = views(net, [layer, "relu0"])(x)
    np.testing.assert_allclose(both[0].numpy(), reference.numpy(), atol=1e-4)


def test_blur_keeps_a_constant_image_and_smooths_an_impulse() -> None:
    flat = tf.ones((1, 9, 11, 1))
    np.testing.assert_allclose(blur(flat, 1.0).numpy(), flat.numpy(), atol=1e-6)
    impulse = np.zeros((1, 9, 11, 1), np.float32)
    impulse[0, 4, 5, 0] = 1.0
    out = blur(tf.constant(impulse), 1.0).numpy()
    assert out[0, 4, 5, 0] < 1.0 and out[0, 4, 6, 0] > 0 and abs(out.sum() - 1) < 1e-5
