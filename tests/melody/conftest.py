"""Melody fixtures: one tiny parsed corpus (Essen's 20-tune test1.abc) and one tiny tracked
run on it, shared read-only by the melody tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def melody_overrides(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides of a seconds-long melody run into a private store and cache."""
    root = tmp_path_factory.mktemp("melody")
    return [
        "corpus.files=[test1]",
        f"corpus.cache_dir={root / 'cache'}",
        "corpus.workers=2",
        "split.valid=0.2",
        "split.test=0.2",
        "model.layers=1",
        "model.units=16",
        "model.sequence_length=4",
        "training.epochs=1",
        "training.batch_size=64",
        f"tracking.store={root / 'mlruns'}",
        "tracking.experiment=melody-tests",
    ]


@pytest.fixture(scope="session")
def melody_run(melody_overrides: list[str]):
    """(config, run id) of one tiny tracked melody run."""
    from nsynth_research.core.config import load_tree, validate
    from nsynth_research.core.runs import tracked_training
    from nsynth_research.melody.config import MelodyConfig
    from nsynth_research.melody.task import MelodyTask

    config = validate(
        load_tree(Path("configs/melody-baseline.yaml"), melody_overrides), "test", MelodyConfig
    )
    task = MelodyTask()
    tracked = tracked_training(task, config, task.prepare(config, progress=False), verbose=0)
    return config, tracked.run_id
