"""Loaders the pipeline benchmark compares the project's pipeline with: the per-note file
layout the feature cache had before its rows (kept as the experiment that shows what rows
fixed), and cold gathers from rows, with and without advising the kernel of each batch's rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from benchmarks.common import Measured, interleaved
from benchmarks.pipeline_probe import Probe
from nsynth_research.instruments.data.audio_dataset import epoch_order
from nsynth_research.instruments.features.rows import Gatherer, RowFile

COLD_ADVISED = "rows, each batch's rows advised at once (default)"
COLD_FAULTED = "rows, read as they fault in"
#: The cold rows file holds this many rows per row an epoch reads.
SPREAD = 4


def per_note_files(paths, labels, norm, frames: int, bins: int, batch: int) -> tf.data.Dataset:
    """One raw float32 file per note, read and decoded by a parallel tf.data map (AUTOTUNE,
    deterministic), batched, normalised by a second parallel map, AUTOTUNE prefetch."""
    paths_t = tf.constant([str(p) for p in paths])
    labels_t = tf.constant(labels)

    def read(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        raw = tf.io.decode_raw(tf.io.read_file(tf.gather(paths_t, i)), tf.float32)
        return tf.reshape(raw, [frames, bins]), tf.gather(labels_t, i)

    ds = epoch_order(len(paths), shuffle=True, seed=0)
    ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch)
    ds = ds.map(
        lambda f, y: (tf.expand_dims(norm(f), -1), y),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def cold_reads(
    rows: np.ndarray, where: list[int], tmp: Path, batch: int, probe: Probe
) -> dict[str, Measured]:
    """Epochs of gathers (no model) from a rows file whose pages were dropped from the page
    cache first, as every epoch of a corpus larger than memory reads: with each batch's rows
    advised to the kernel at once (the default), and read as they fault in. The file holds
    `SPREAD` times the epoch's rows (the epoch's every `SPREAD`th, the others copies), as a
    subsample or one split's rows among many would: what the kernel reads beyond the rows
    asked for shows."""
    path = tmp / "cold-rows.f32"
    with open(path, "wb") as handle:
        for row in where:
            for _ in range(SPREAD):
                handle.write(rows[row].tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    store = RowFile(tmp, rows.shape[1], rows.shape[2])
    os.replace(path, store.data)
    order = np.random.default_rng(0).permutation(len(where))

    def epoch(advise: bool) -> None:
        fd = os.open(store.data, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        at = list(range(0, SPREAD * len(where), SPREAD))
        gather = Gatherer(store.mapped(), at, None, advise=advise)
        for start in range(0, len(order), batch):
            gather(order[start : start + batch])

    try:
        return interleaved(
            {
                COLD_ADVISED: probe.wrap(COLD_ADVISED, lambda: epoch(True)),
                COLD_FAULTED: probe.wrap(COLD_FAULTED, lambda: epoch(False)),
            },
            len(where),
            repeats=5,
        )
    finally:
        store.data.unlink()
