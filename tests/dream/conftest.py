"""A tiny logged instrument model to dream, with one conv channel that can never fire.

The model is untrained (dreams need a model, not a good one) and logged the way a training
run logs one (config, train statistics, Keras model), so `dream` loads it through the same
path as a champion. Channel 0 of the first conv block is switched off for every input: batch
norm scales it to 0 and shifts it far below 0, so its ReLU is 0 everywhere and has no gradient.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest

DEAD_CHANNEL = 0


@pytest.fixture(scope="session")
def dream_model_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """(tracking config, run id) of a tiny model with a dead channel in its first block."""
    import keras

    from nsynth_research.core.runs import log_config
    from nsynth_research.core.tracking import log_keras_model, tracked_run
    from nsynth_research.instruments.config import load_config
    from nsynth_research.instruments.data.reader import read_split
    from nsynth_research.instruments.features.stats import compute_stats
    from nsynth_research.instruments.model import build_model
    from nsynth_research.instruments.task import STATS_ARTIFACT

    store = tmp_path_factory.mktemp("dream-store") / "mlruns"
    config = load_config(
        None,
        [
            f"data.root={tiny_corpus}",
            f"tracking.store={store}",
            "tracking.experiment=models",
            "model.filters=[4,4]",
            "model.dense=[8]",
        ],
    )
    keras.utils.set_random_seed(0)
    model = build_model(config.model, config.features)
    bn = model.get_layer("bn0")
    gamma, beta, mean, var = bn.get_weights()
    gamma[DEAD_CHANNEL], beta[DEAD_CHANNEL] = 0.0, -100.0
    bn.set_weights([gamma, beta, mean, var])
    stats = compute_stats(read_split(tiny_corpus, "train"), config.features, progress=False)
    with tracked_run(config.tracking, run_name="tiny dream model") as run:
        log_config(config)
        path = tmp_path_factory.mktemp("stats") / STATS_ARTIFACT
        stats.save(path)
        mlflow.log_artifact(str(path))
        log_keras_model(model)
    assert np.isfinite(stats.mean).all()
    return config.tracking, run.info.run_id
