"""6. The training step on its own: XLA (`jit_compile`) and TensorFlow thread settings.

The ceiling of the pipeline benchmark (batches already in memory) is what the model step alone
costs, so it is what these settings can change. Thread pools are fixed when TensorFlow starts,
so every contender is a fresh process (`CHILD`) that warms up one epoch untimed and reports
the seconds of the next ones; the parent interleaves the processes over rounds.

Keras compiles with XLA by default ("auto") unless op determinism is on, which the project
turns on (`training.deterministic`) so that CPU runs repeat bit for bit: the default row is
therefore the non-XLA step.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.common import interleaved, markdown, ratio_rows, save, table

NOTES, EPOCHS = 256, 2
CHILD = r"""
import json, sys, time
jit, deterministic = sys.argv[1], sys.argv[2] == "1"
intra, inter = int(sys.argv[3]), int(sys.argv[4])
import tensorflow as tf
if intra:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
if inter:
    tf.config.threading.set_inter_op_parallelism_threads(inter)
import keras, numpy as np
from nsynth_research.core.keras_loop import seed_everything
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.model import build_model
cfg = InstrumentConfig()
seed_everything(0, deterministic)
n, epochs = int(sys.argv[5]), int(sys.argv[6])
x = np.random.default_rng(0).standard_normal((n, cfg.features.frames, cfg.features.bins, 1))
ds = tf.data.Dataset.from_tensor_slices((x.astype("float32"), np.arange(n) % 11)).batch(32)
model = build_model(cfg.model, cfg.features)
model.compile(optimizer=keras.optimizers.Adadelta(0.01), jit_compile={"auto": "auto",
              "on": True, "off": False}[jit],
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(ds, epochs=1, verbose=0)
start = time.perf_counter()
model.fit(ds, epochs=epochs, verbose=0)
print(json.dumps({"seconds": (time.perf_counter() - start) / epochs}))
"""
#: label -> (jit_compile, deterministic, intra-op threads, inter-op threads); 0 = TF default.
CONTENDERS = {
    "default: deterministic, no XLA, TF threads": ("auto", "1", 0, 0),
    "XLA (jit_compile=True), deterministic": ("on", "1", 0, 0),
    "XLA (auto), not deterministic": ("auto", "0", 0, 0),
    "no XLA, not deterministic": ("off", "0", 0, 0),
    "no XLA, deterministic, intra 2 / inter 1": ("auto", "1", 2, 1),
    "no XLA, deterministic, intra 1 / inter 2": ("auto", "1", 1, 2),
}
REFERENCE = "default: deterministic, no XLA, TF threads"


def child(args: tuple) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, args), str(NOTES), str(EPOCHS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


def run() -> dict:
    rates = interleaved(
        {k: (lambda a=a: child(a)) for k, a in CONTENDERS.items()},
        NOTES,
        warmup=0,
        self_timed=True,
    )
    headers, rows = ratio_rows(rates, REFERENCE, "train ex/s")
    print(table(headers, rows))
    print(markdown(headers, rows))
    save(
        "step",
        {
            "notes": NOTES,
            "epochs_timed": EPOCHS,
            "reference": REFERENCE,
            "examples_per_second": {k: m.as_json() for k, m in rates.items()},
            "x_reference": {k: m.median / rates[REFERENCE].median for k, m in rates.items()},
            "overlaps_reference": {k: m.overlaps(rates[REFERENCE]) for k, m in rates.items()},
        },
        tables={"step": (headers, rows)},
    )
    return {k: m.median for k, m in rates.items()}
