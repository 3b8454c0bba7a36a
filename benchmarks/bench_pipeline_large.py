"""The default pipeline at NSynth's size: epochs of the seed model read from a rows file of
`LARGE_NOTES` notes (the large run's train split) against the in-memory ceiling's rate.

Rendering and featurising 44k notes takes hours on 2 cores (`large`), and the pipeline's speed
does not depend on what the rows hold, so the rows file is the default corpus's real train
features, repeated to the large split's size and stored as float16, the dtype
`data.feature_cache: auto` picks at that size on this disk. The ceiling (the pipeline
benchmark's: normalised tensors in memory, shuffled and batched by tf.data, autotuning off) cannot
hold 44k notes in memory, so it trains on `NOTES` of them, timed before and after the large
epochs in the same process; the ratio is of rates (examples per second). Needs
`LARGE_NOTES` x 258 kB of free disk (11.4 GB), removed afterwards.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from benchmarks.bench_pipeline import compiled_model, in_memory, seed_setting, timed_epochs
from benchmarks.common import DATA_ROOT, save, table
from benchmarks.pipeline_probe import machine_state
from benchmarks.pipeline_report import BATCH, NOTES
from nsynth_research.core.keras_loop import without_autotuning
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.features.cache import (
    ITEMSIZE,
    FeatureCache,
    cache_dir,
    ensure_cached,
)
from nsynth_research.instruments.features.rows import RowFile
from nsynth_research.instruments.pipeline import make_dataset

#: Train notes of the large run (benchmarks/results/large.json, "notes (train / valid / test)").
LARGE_NOTES = 44379
LARGE_EPOCHS, CEILING_EPOCHS = 2, 5


def run() -> dict:
    before, config, train, stats = seed_setting()
    cfg = config.features
    cache = ensure_cached(train, cfg, cache_dir(DATA_ROOT, "train", cfg), progress=False)
    real = cache.store.mapped()
    small = train[:: max(1, len(train) // NOTES)][:NOTES]
    x = np.concatenate([b.numpy() for b, _ in make_dataset(small, stats, cfg, batch_size=BATCH,
                                                           shuffle=False, seed=0)])  # fmt: skip
    labels = np.array([n.family for n in small], np.int32)
    ceiling = without_autotuning(in_memory(x, labels))
    model = compiled_model(config)
    model.fit(ceiling, epochs=1, verbose=0)  # tracing
    rates = {"ceiling, before": _rates(model, ceiling, len(small), CEILING_EPOCHS)}
    with tempfile.TemporaryDirectory(dir=DATA_ROOT) as tmp:
        written = time.perf_counter()
        notes = _large_rows(Path(tmp), real, dict(cache.rows), train, cfg)
        written = time.perf_counter() - written
        large = FeatureCache(
            Path(tmp), cfg, "float16", {n.note_str: i for i, n in enumerate(notes)}
        )
        pipe = make_dataset(notes, stats, cfg, batch_size=BATCH, shuffle=True, seed=0, cache=large)
        rates["pipeline, 44k notes"] = _rates(model, pipe, len(notes), LARGE_EPOCHS)
    rates["ceiling, after"] = _rates(model, ceiling, len(small), CEILING_EPOCHS)
    after = machine_state()
    ceiling_rate = statistics.median(rates["ceiling, before"] + rates["ceiling, after"])
    headers = ["contender", "notes", "epochs", "ex/s each epoch", "x ceiling's median"]
    rows = []
    for name, r in rates.items():
        each = " ".join(f"{v:.0f}" for v in r)
        count = LARGE_NOTES if "44k" in name else len(small)
        rows.append([name, count, len(r), each, statistics.median(r) / ceiling_rate])
    print(f"\n{table(headers, rows)}\n")
    pipe_rates = rates["pipeline, 44k notes"]
    summary = {
        "notes": LARGE_NOTES,
        "rows_GB": LARGE_NOTES * cfg.frames * cfg.bins * ITEMSIZE["float16"] / 1e9,
        "write_s": written,
        "ceiling_ex_s": ceiling_rate,
        "epoch_s": [LARGE_NOTES / r for r in pipe_rates],
        "pipeline_vs_ceiling": [r / ceiling_rate for r in pipe_rates],
    }
    print(
        f"load average after: {after['load1']:.2f} {after['load5']:.2f}; an epoch of "
        f"{LARGE_NOTES} notes took {', '.join(f'{s:.0f} s' for s in summary['epoch_s'])}: "
        + ", ".join(f"{v:.2f}" for v in summary["pipeline_vs_ceiling"])
        + " of the in-memory ceiling's rate"
    )
    save(
        "pipeline_large",
        {"machine_before": before, "machine_after": after, "rates": rates, "summary": summary},
        tables={"epochs": (headers, rows)},
    )
    return summary


def _rates(model, dataset: tf.data.Dataset, notes: int, epochs: int) -> list[float]:
    """Examples per second of `epochs` one-epoch fits."""
    return [notes / t for t in timed_epochs(model, lambda: dataset, epochs)]


def _large_rows(
    folder: Path, real: np.ndarray, rows: dict[str, int], train: list[Note], cfg
) -> list[Note]:
    """`LARGE_NOTES` float16 rows, the real train rows over and over, and a note for each."""
    store = RowFile(folder, cfg.frames, cfg.bins, "float16")
    notes = []
    with store.locked(), store.appender() as appender:
        for start in range(0, LARGE_NOTES, BATCH * 8):
            count = min(BATCH * 8, LARGE_NOTES - start)
            sources = [train[(start + i) % len(train)] for i in range(count)]
            names = [f"large-{start + i:06d}" for i in range(count)]
            appender.add(real[[rows[n.note_str] for n in sources]], names)
            notes += [replace(n, note_str=name) for n, name in zip(sources, names, strict=True)]
    return notes
