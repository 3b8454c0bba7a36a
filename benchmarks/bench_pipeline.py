"""1. Input pipeline vs ceiling vs a seed-style loader, training the seed model.

Ceiling: the same normalised batches already in memory (nothing left to load). Seed-style:
one `np.load` of a per-note feature .npy per sample and Python batching, as the classic
notebook did. The project's pipeline runs as configured by default (features read from the
feature cache) and with the cache off (features computed every epoch). All train the same
model for one epoch; contenders interleaved over 5 rounds after a warm-up
(`common.interleaved`). The loaders are also timed alone, without a
model, which is what separates them once training itself is the bottleneck.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from benchmarks.common import DATA_ROOT, interleaved, markdown, ratio_rows, save, table
from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.cache import cache_dir, ensure_cached
from nsynth_research.instruments.features.spectrogram import librosa_features
from nsynth_research.instruments.features.stats import load_or_compute_stats
from nsynth_research.instruments.model import build_model
from nsynth_research.instruments.pipeline import make_dataset

NOTES, BATCH, REPEATS = 384, 32, 5
CEILING = "ceiling (in-memory tensors)"
PIPE = "project pipeline (feature cache, default)"
SEED = "seed-style (np.load per note)"


def compiled_model(config) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model(config.model, config.features)
    model.compile(
        optimizer=keras.optimizers.Adadelta(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def run() -> dict:
    config = load_config(Path("configs/baseline.yaml"), [f"data.root={DATA_ROOT}"])
    train = read_split(DATA_ROOT, "train")
    stats = load_or_compute_stats(DATA_ROOT, train, config.features, progress=False)
    notes = train[:: max(1, len(train) // NOTES)][:NOTES]
    labels = np.array([n.family for n in notes], dtype=np.int32)
    cache = ensure_cached(
        notes, config.features, cache_dir(DATA_ROOT, "train", config.features), progress=False
    )

    def pipeline(cached: bool) -> tf.data.Dataset:
        return make_dataset(
            notes,
            stats,
            config.features,
            batch_size=BATCH,
            shuffle=True,
            seed=0,
            cache=cache if cached else None,
        )

    cached_pipe, computing_pipe = pipeline(True), pipeline(False)
    x = np.concatenate(
        [
            b.numpy()
            for b, _ in make_dataset(
                notes, stats, config.features, batch_size=BATCH, shuffle=False, seed=0
            )
        ]
    )
    ceiling = tf.data.Dataset.from_tensor_slices((x, labels)).batch(BATCH).prefetch(2)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, note in enumerate(notes):
            feats = librosa_features(load_audio(note.path), config.features)
            feats = stats.normaliser(config.features.norm_eps)(feats).numpy()
            paths.append(Path(tmp) / f"{i}.npy")
            np.save(paths[-1], feats.astype(np.float32))

        def seed_style():
            order = np.random.default_rng(0).permutation(len(paths))
            for start in range(0, len(order), BATCH):
                idx = order[start : start + BATCH]
                yield np.stack([np.load(paths[i])[..., None] for i in idx]), labels[idx]

        loaders = {
            CEILING: lambda: ceiling,
            PIPE: lambda: cached_pipe,
            "project pipeline (features each epoch)": lambda: computing_pipe,
            SEED: seed_style,
        }
        models = {name: compiled_model(config) for name in loaders}
        # Warm-up (tracing, caches) inside `interleaved`, then interleaved rounds.
        results = interleaved(
            {
                k: (lambda m=models[k], mk=mk: m.fit(mk(), epochs=1, verbose=0))
                for k, mk in loaders.items()
            },
            len(notes),
            repeats=REPEATS,
        )
        alone = interleaved(
            {k: (lambda mk=mk: _drain(mk())) for k, mk in loaders.items()},
            len(notes),
            repeats=REPEATS,
        )
    headers, rows = ratio_rows(results, CEILING, "train ex/s")
    print(table(headers, rows))
    print(markdown(headers, rows))
    a_headers, a_rows = ratio_rows(alone, SEED, "loader-only ex/s")
    print(table(a_headers, a_rows))
    print(markdown(a_headers, a_rows))
    med = {k: m.median for k, m in results.items()}
    verdict = {
        "pipeline_vs_ceiling": med[PIPE] / med[CEILING],
        "pipeline_vs_seed_style": med[PIPE] / med[SEED],
        "ceiling_vs_seed_style": med[CEILING] / med[SEED],
        "loader_only_vs_seed_style": alone[PIPE].median / alone[SEED].median,
        "pipeline_overlaps_ceiling": results[PIPE].overlaps(results[CEILING]),
    }
    print(
        f"targets: >= 0.90 of ceiling -> {verdict['pipeline_vs_ceiling']:.2f}; "
        f">= 3x seed-style -> {verdict['pipeline_vs_seed_style']:.2f}x in training (the "
        f"ceiling itself is {verdict['ceiling_vs_seed_style']:.2f}x), "
        f"{verdict['loader_only_vs_seed_style']:.2f}x as loaders alone"
    )
    save(
        "pipeline",
        {
            "notes": len(notes),
            "batch": BATCH,
            "repeats": REPEATS,
            "examples_per_second": {k: m.as_json() for k, m in results.items()},
            "loader_only_examples_per_second": {k: m.as_json() for k, m in alone.items()},
            **verdict,
        },
    )
    return verdict


def _drain(batches) -> None:
    for _ in batches:
        pass
