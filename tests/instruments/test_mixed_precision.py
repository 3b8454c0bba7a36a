"""`training.precision=mixed_float16` end to end on CPU: the step trains with loss scaling,
the logged model loads back and predicts float32 logits, as it would on a GPU."""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from tests.conftest import train_tiny

pytestmark = pytest.mark.slow


def test_a_mixed_float16_run_trains_logs_and_loads(tiny_corpus: Path, tmp_path: Path) -> None:
    from nsynth_research.core.tracking import open_store

    config, tracked = train_tiny(
        tiny_corpus,
        tmp_path / "mlruns",
        "model.filters=[8,8]",
        "model.dense=[16]",
        "training.epochs=1",
        "training.precision=mixed_float16",
    )
    assert isinstance(tracked.result.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.isfinite(tracked.result.history["loss"]).all()

    open_store(config.tracking)  # sets the tracking URI the model is read back through
    model = mlflow.keras.load_model(f"runs:/{tracked.run_id}/model")
    assert model.get_layer("conv0").compute_dtype == "float16"
    logits = model.predict(np.zeros((1, *model.input_shape[1:]), np.float32), verbose=0)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
