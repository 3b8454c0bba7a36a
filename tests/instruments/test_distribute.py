"""`training.distribute: mirrored` trains data-parallel: checked on two logical CPU devices in
a child process, since the device layout is fixed once TensorFlow starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nsynth_research.core.errors import ConfigError
from nsynth_research.instruments.config import load_config

CHILD = r"""
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.training import prepare_data, train

out = {}
for distribute in ("none", "mirrored"):
    cfg = load_config(None, [f"data.root={sys.argv[1]}", "model.filters=[16,16,32]",
                             "model.dense=[32,32]", "training.epochs=3", "training.batch_size=8",
                             "optimizer.name=adam", "optimizer.learning_rate=0.003",
                             f"training.distribute={distribute}"])
    result = train(cfg, prepare_data(cfg, progress=False), verbose=0)
    model = result.model
    out[distribute] = {
        "replicas": model.distribute_strategy.num_replicas_in_sync,
        "distributed": [isinstance(v.value, tf.distribute.DistributedValues)
                        for v in model.variables + model.optimizer.variables],
        "loss": result.history["loss"],
        "val_accuracy": result.history["val_accuracy"],
        "objective": result.objective,
    }
print(json.dumps(out))
"""


@pytest.mark.slow
def test_mirrored_training_replicates_over_two_devices(tiny_corpus: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tiny_corpus)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    single, mirrored = got["none"], got["mirrored"]
    assert single["replicas"] == 1 and not any(single["distributed"])
    assert mirrored["replicas"] == 2 and all(mirrored["distributed"])
    # It trains: the loss falls, and every epoch is scored on validation.
    assert mirrored["loss"][-1] < mirrored["loss"][0], mirrored["loss"]
    assert len(mirrored["val_accuracy"]) == 3 and 0.0 <= mirrored["objective"] <= 1.0


def test_distribute_is_checked_by_key() -> None:
    assert load_config(None, ["training.distribute=mirrored"]).training.distribute == "mirrored"
    with pytest.raises(ConfigError, match=r"training\.distribute"):
        load_config(None, ["training.distribute=horovod"])
