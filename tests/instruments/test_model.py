"""Model shapes for the seed design and its 1-D/2-D relatives, checked against the config."""

from __future__ import annotations

import numpy as np
import pytest

from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.families import NUM_CLASSES
from nsynth_research.instruments.model import EMBEDDING_LAYER, build_model, embedding_model

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
        "model.global_pool=true",
        "model.filters=[16,32]",
        "model.dense=[64]",
        "model.dropout=0.3",
        "model.batch_norm=false",
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shapes(name: str) -> None:
    cfg = load_config(None, CASES[name])
    model = build_model(cfg.model, cfg.features)
    assert model.input_shape == (None, 251, 513, 1)
    assert model.output_shape == (None, NUM_CLASSES)
    assert model.get_layer(EMBEDDING_LAYER).output.shape[-1] == cfg.model.dense[-1]
    convs = [layer for layer in model.layers if layer.name.startswith("conv")]
    assert [c.filters for c in convs] == list(cfg.model.filters)
    x = np.zeros((2, 251, 513, 1), dtype=np.float32)
    logits, emb = embedding_model(model)(x, training=False)
    assert logits.shape == (2, NUM_CLASSES)
    assert emb.shape == (2, cfg.model.dense[-1])


def test_seed_model_collapses_frequency() -> None:
    cfg = load_config(None)
    model = build_model(cfg.model, cfg.features)
    assert model.get_layer("conv0").output.shape[1:] == (249, 1, 64)
    # 249 -> 83 -> 27 -> 9 -> 3 frames after four (3, 1) stride-3 pools; 3 x 128 flattened.
    assert model.get_layer("flatten").output.shape[-1] == 3 * 128


def test_mixed_precision_keeps_float32_logits() -> None:
    cfg = load_config(None, ["model.filters=[8,8]", "model.dense=[16,16]"])
    model = build_model(cfg.model, cfg.features, precision="mixed_float16")
    assert model.get_layer("conv0").compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32"
