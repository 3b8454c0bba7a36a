"""1. Input pipeline vs ceiling vs a seed-style loader, training the seed model.

Ceiling: the same normalised features held in memory as tensors, shuffled and batched by
tf.data each epoch (training with nothing to load), with tf.data's autotuning off; beside it
the same ceiling with autotuning on (the experiment that shows what autotuning costs on two
cores) and a bound with nothing left to assemble either: finished batches held in memory, one
dataset element per batch, no per-batch copy. The project's
pipeline runs as configured by default (a batch of rows gathered from the mapped feature cache)
and with the cache off (features computed every epoch). Per-note cache files: the layout
the cache had before rows, one raw file per note read by a parallel tf.data map, kept here as
the experiment that shows what rows fixed. Seed-style: one `np.load` of a per-note feature
.npy per sample and Python batching, as the classic notebook did. All train the same model for
`EPOCHS` epochs a round (one `fit` of one epoch each, as a study's trial starts every epoch's
reading afresh; three make a round long enough that a second of machine noise does not decide
it); contenders interleaved over `REPEATS` rounds after a warm-up (`common.interleaved`),
every round printed; then the loaders alone, without a model, and the cache's gathers from
rows not in the page cache (`pipeline_loaders.cold_reads`); then the ceiling, the pipeline and
seed-style again with a study's trial training beside them (`pipeline_probe.study_beside`).

Beside each timing it records what the epoch cost the process (CPU, page faults, disk reads,
threads) and how busy the machine was (load average, other processes' cores), and flags a
contender whose rounds split into two speeds (`pipeline_probe.clusters`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from benchmarks.common import DATA_ROOT, interleaved
from benchmarks.pipeline_loaders import cold_reads, per_note_files
from benchmarks.pipeline_probe import Probe, machine_state, study_beside, syscalls_per_call
from benchmarks.pipeline_report import (
    AUTOTUNED,
    BATCH,
    BOUND,
    CEILING,
    COMPUTING,
    EPOCHS,
    LOADED_REPEATS,
    NOTES,
    PER_NOTE,
    PIPE,
    REPEATS,
    SEED,
    report,
)
from nsynth_research.core.keras_loop import without_autotuning
from nsynth_research.instruments.config import InstrumentConfig, load_config
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.cache import cache_dir, ensure_cached
from nsynth_research.instruments.features.spectrogram import librosa_features
from nsynth_research.instruments.features.stats import FeatureStats, load_or_compute_stats
from nsynth_research.instruments.model import build_model
from nsynth_research.instruments.pipeline import make_dataset


def compiled_model(config) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model(config.model, config.features)
    model.compile(
        optimizer=keras.optimizers.Adadelta(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def seed_setting() -> tuple[dict, InstrumentConfig, list[Note], FeatureStats]:
    """The machine's state before (printed), the seed config on the bench corpus, its train
    notes and their statistics: where both pipeline benchmarks start."""
    before = machine_state()
    print(f"load average before: {before['load1']:.2f} {before['load5']:.2f} (1, 5 min)")
    config = load_config(Path("configs/baseline.yaml"), [f"data.root={DATA_ROOT}"])
    train = read_split(DATA_ROOT, "train")
    stats = load_or_compute_stats(DATA_ROOT, train, config.features, progress=False)
    return before, config, train, stats


def run() -> dict:
    before, config, train, stats = seed_setting()
    cfg = config.features
    notes = train[:: max(1, len(train) // NOTES)][:NOTES]
    labels = np.array([n.family for n in notes], dtype=np.int32)
    cache = ensure_cached(notes, cfg, cache_dir(DATA_ROOT, "train", cfg), progress=False)

    def pipeline(cached: bool) -> tf.data.Dataset:
        return make_dataset(
            notes,
            stats,
            cfg,
            batch_size=BATCH,
            shuffle=True,
            seed=0,
            cache=cache if cached else None,
        )

    cached_pipe, computing_pipe = pipeline(True), pipeline(False)
    plain = make_dataset(notes, stats, cfg, batch_size=BATCH, shuffle=False, seed=0)
    x = np.concatenate([b.numpy() for b, _ in plain])
    autotuned = in_memory(x, labels)
    ceiling = without_autotuning(autotuned)
    # Whole batches formed once: each element is a finished batch that TensorFlow hands to the
    # step without a copy, so nothing at all runs beside the step.
    batches = len(notes) // BATCH
    bound = without_autotuning(
        tf.data.Dataset.from_tensor_slices(
            (
                x[: batches * BATCH].reshape(batches, BATCH, *x.shape[1:]),
                labels[: batches * BATCH].reshape(batches, BATCH),
            )
        ).prefetch(2)
    )
    norm = stats.normaliser(cfg.norm_eps)
    with tempfile.TemporaryDirectory() as tmp:
        rows = cache.store.mapped()
        files, npys = [], []
        for i, note in enumerate(notes):
            files.append(Path(tmp) / f"{i}.f32")
            files[-1].write_bytes(rows[cache.rows[note.note_str]].tobytes())
            feats = norm(librosa_features(load_audio(note.path), cfg)).numpy()
            npys.append(Path(tmp) / f"{i}.npy")
            np.save(npys[-1], feats.astype(np.float32))
        per_note = per_note_files(files, labels, norm, cfg.frames, cfg.bins, BATCH)

        def seed_style():
            order = np.random.default_rng(0).permutation(len(npys))
            for start in range(0, len(order), BATCH):
                idx = order[start : start + BATCH]
                yield np.stack([np.load(npys[i])[..., None] for i in idx]), labels[idx]

        loaders = {
            CEILING: lambda: ceiling,
            AUTOTUNED: lambda: autotuned,
            BOUND: lambda: bound,
            PIPE: lambda: cached_pipe,
            PER_NOTE: lambda: per_note,
            COMPUTING: lambda: computing_pipe,
            SEED: seed_style,
        }
        models = {name: compiled_model(config) for name in loaders}
        seconds: dict[str, list[float]] = {k: [] for k in loaders}  # every fit's wall time
        fits = {
            k: (lambda m=models[k], mk=mk, s=seconds[k]: s.extend(timed_epochs(m, mk, EPOCHS)))
            for k, mk in loaders.items()
        }
        probe = Probe()
        # Warm-up (tracing, caches) inside `interleaved`, then interleaved rounds.
        results = interleaved(
            {k: probe.wrap(k, f) for k, f in fits.items()}, EPOCHS * len(notes), repeats=REPEATS
        )
        # One rate per epoch of the timed rounds (the first EPOCHS fits were the warm-up).
        epochs = {k: [len(notes) / t for t in s[EPOCHS:]] for k, s in seconds.items()}
        alone = interleaved(
            {k: (lambda mk=mk: _drain(mk())) for k, mk in loaders.items()},
            len(notes),
            repeats=5,
        )
        cold = cold_reads(rows, [cache.rows[n.note_str] for n in notes], Path(tmp), BATCH, probe)
        maps = {
            k: syscalls_per_call(lambda mk=loaders[k]: _drain(mk()))
            for k in (CEILING, PIPE, PER_NOTE)
        }
        beside = Probe()
        with study_beside():
            loaded = interleaved(
                {k: beside.wrap(k, fits[k]) for k in (CEILING, PIPE, SEED)},
                EPOCHS * len(notes),
                repeats=LOADED_REPEATS,
            )
    after = machine_state()
    machine = (before, after)
    return report(results, epochs, alone, cold, loaded, maps, probe, beside, machine, len(notes))


def timed_epochs(model: keras.Model, make, count: int) -> list[float]:
    """Wall seconds of `count` one-epoch fits, each on a fresh `make()` (a new iterator per
    epoch, as in a study's trial)."""
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        model.fit(make(), epochs=1, verbose=0)
        seconds.append(time.perf_counter() - start)
    return seconds


def in_memory(x: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
    """The ceiling's tensors, shuffled and batched every epoch, with tf.data's default options
    (the ceiling proper runs them `without_autotuning`)."""
    ds = tf.data.Dataset.from_tensor_slices((x, labels)).shuffle(len(labels), seed=0)
    return ds.batch(BATCH).prefetch(2)


def _drain(batches) -> None:
    for _ in batches:
        pass
