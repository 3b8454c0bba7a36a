"""A normal sweep prints no TensorFlow error lines: the training pipeline's epoch order is a
stateless in-graph source, so under op determinism (every seeded run) tf.data keeps its
parallel maps and prefetch as they are instead of rewriting them into sequential ones, the
rewrite that printed `E0000 ... NodeDef mentions attribute use_unbounded_threadpool`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import tensorflow as tf
from nsynth_research.instruments.data.audio_dataset import epoch_order
tf.config.experimental.enable_op_determinism()
ds = epoch_order(12, shuffle=True, seed=3)
ds = ds.map(lambda i: i * 2, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
ds = ds.prefetch(tf.data.AUTOTUNE)
epochs = [sorted(int(x) // 2 for x in ds) for _ in range(2)]
orders = [[int(x) for x in ds] for _ in range(2)]
print(epochs == [list(range(12))] * 2, orders[0] != orders[1])
"""


def test_a_shuffled_pipeline_runs_without_tensorflow_error_lines() -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]  # every note once, a new order each epoch
    errors = [line for line in out.stderr.splitlines() if line.startswith("E0000")]
    assert not errors, errors
