"""1. Input pipeline vs ceiling vs a seed-style loader, training the seed model.

Ceiling: the same normalised batches already formed and held in memory as tensors, one
dataset element per batch (nothing left to load or assemble). The project's
pipeline runs as configured by default (a batch of rows gathered from the mapped feature cache)
and with the cache off (features computed every epoch). Per-note cache files: the layout
the cache had before rows, one raw file per note read by a parallel tf.data map, kept here as
the experiment that shows what rows fixed. Seed-style: one `np.load` of a per-note feature
.npy per sample and Python batching, as the classic notebook did. All train the same model for
one epoch; contenders interleaved over `REPEATS` rounds after a warm-up (`common.interleaved`),
every round printed; then the loaders alone, without a model, and the cache's gathers from
rows not in the page cache (`pipeline_loaders.cold_reads`); then the ceiling, the pipeline and
seed-style again with a study's trial training beside them (`pipeline_probe.study_beside`).

Beside each timing it records what the epoch cost the process (CPU, page faults, disk reads,
threads) and how busy the machine was (load average, other processes' cores), and flags a
contender whose rounds split into two speeds (`pipeline_probe.clusters`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from benchmarks.common import DATA_ROOT, Measured, interleaved, markdown, ratio_rows, save, table
from benchmarks.pipeline_loaders import COLD_ADVISED, COLD_FAULTED, cold_reads, per_note_files
from benchmarks.pipeline_probe import (
    Probe,
    clusters,
    machine_state,
    median_of,
    study_beside,
    syscalls_per_call,
)
from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.cache import cache_dir, ensure_cached
from nsynth_research.instruments.features.spectrogram import librosa_features
from nsynth_research.instruments.features.stats import load_or_compute_stats
from nsynth_research.instruments.model import build_model
from nsynth_research.instruments.pipeline import make_dataset

NOTES, BATCH, REPEATS, LOADED_REPEATS = 384, 32, 10, 6
CEILING = "ceiling (in-memory tensors)"
PIPE = "project pipeline (feature cache, default)"
PER_NOTE = "per-note cache files (parallel tf.data reads)"
COMPUTING = "project pipeline (features each epoch)"
SEED = "seed-style (np.load per note)"
#: Short names of the contenders in the results' summary (docs quote values by these).
KEYS = {CEILING: "ceiling", PIPE: "pipeline", PER_NOTE: "per_note", COMPUTING: "computing"}
KEYS[SEED] = "seed_style"


def compiled_model(config) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model(config.model, config.features)
    model.compile(
        optimizer=keras.optimizers.Adadelta(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def run() -> dict:
    before = machine_state()
    print(f"load average before: {before['load1']:.2f} {before['load5']:.2f} (1, 5 min)")
    config = load_config(Path("configs/baseline.yaml"), [f"data.root={DATA_ROOT}"])
    cfg = config.features
    train = read_split(DATA_ROOT, "train")
    stats = load_or_compute_stats(DATA_ROOT, train, cfg, progress=False)
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
    # Whole batches formed once and held in memory: each element is a finished batch, so no
    # per-example slicing or batch copy runs beside the step (what "nothing to load" means).
    batches = len(notes) // BATCH
    ceiling = tf.data.Dataset.from_tensor_slices(
        (
            x[: batches * BATCH].reshape(batches, BATCH, *x.shape[1:]),
            labels[: batches * BATCH].reshape(batches, BATCH),
        )
    ).prefetch(2)
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
            PIPE: lambda: cached_pipe,
            PER_NOTE: lambda: per_note,
            COMPUTING: lambda: computing_pipe,
            SEED: seed_style,
        }
        models = {name: compiled_model(config) for name in loaders}
        fits = {
            k: (lambda m=models[k], mk=mk: m.fit(mk(), epochs=1, verbose=0))
            for k, mk in loaders.items()
        }
        probe = Probe()
        # Warm-up (tracing, caches) inside `interleaved`, then interleaved rounds.
        results = interleaved(
            {k: probe.wrap(k, f) for k, f in fits.items()}, len(notes), repeats=REPEATS
        )
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
                len(notes),
                repeats=LOADED_REPEATS,
            )
    after = machine_state()
    return report(results, alone, cold, loaded, maps, probe, beside, before, after, len(notes))


def report(results, alone, cold, loaded, maps, probe, beside, before, after, notes: int) -> dict:
    headers, rows = ratio_rows(results, CEILING, "train ex/s")
    headers.append("rounds")
    for row in rows:
        row.append(clusters(results[row[0]].samples))
    r_headers = ["round", "ceiling ex/s", "pipeline ex/s", "pipeline / ceiling", "per-note ex/s"]
    r_headers += ["per-note page faults", "seed-style ex/s", "load (1 min)", "others' cores"]
    r_rows = []
    for r in range(REPEATS):
        calls = [probe.timed(name)[r] for name in results]
        row = [r + 1, results[CEILING].samples[r], results[PIPE].samples[r]]
        row += [results[PIPE].samples[r] / results[CEILING].samples[r]]
        row += [results[PER_NOTE].samples[r], probe.timed(PER_NOTE)[r].faults]
        row += [results[SEED].samples[r]]
        row += [max(c.load1 for c in calls), max(c.others_cores for c in calls)]
        r_rows.append(row)
    d_headers = ["contender", "CPU s / epoch", "of which system", "page faults / epoch"]
    d_headers += ["peak threads", "disk MB read / epoch"]
    d_rows = []
    for name in results:
        calls = probe.timed(name)
        cpu = median_of(calls, "user") + median_of(calls, "system")
        system, faults = median_of(calls, "system"), median_of(calls, "faults")
        threads, disk = max(c.peak_threads for c in calls), max(c.disk_mb for c in calls)
        d_rows.append([name, cpu, system, faults, threads, disk])
    m_headers = ["contender", "mmap calls / epoch", "munmap calls / epoch", "MB unmapped / epoch"]
    m_rows = [
        [n, c["mmap"], c["munmap"], c["unmapped_mb"]] if c else [n, "-", "-", "-"]
        for n, c in maps.items()
    ]
    a_headers, a_rows = ratio_rows(alone, SEED, "loader-only ex/s")
    c_headers, c_rows = ratio_rows(cold, COLD_FAULTED, "cold notes/s")
    c_headers.append("disk MB read / epoch")
    for row in c_rows:
        row.append(median_of(probe.timed(row[0]), "disk_mb"))
    l_headers = ["contender", "quiet median ex/s", "beside a study median ex/s", "range"]
    l_headers += ["beside / quiet", "other processes' cores"]
    l_rows = []
    for name, m in loaded.items():
        base = results[name].median
        others = median_of(beside.timed(name), "others_cores")
        l_rows.append([name, base, m.median, m.spread(), m.median / base, others])
    for title, (h, r) in {
        "Training one epoch": (headers, rows),
        "Every round": (r_headers, r_rows),
        "What an epoch costs the process (medians)": (d_headers, d_rows),
        "Loaders alone": (a_headers, a_rows),
        "Memory mappings a loader-only epoch makes (strace)": (m_headers, m_rows),
        "Gathers from rows not in the page cache": (c_headers, c_rows),
        "Beside a study's trial": (l_headers, l_rows),
    }.items():
        print(f"\n{title}:\n{table(h, r)}\n\n{markdown(h, r)}")
    verdict = verdicts(results, loaded)
    verdict["costs"] = {
        KEYS[name]: {
            "cpu_seconds": median_of(probe.timed(name), "user")
            + median_of(probe.timed(name), "system"),
            "system_seconds": median_of(probe.timed(name), "system"),
            "faults_median": median_of(probe.timed(name), "faults"),
            "faults_max": max(c.faults for c in probe.timed(name)),
            "peak_threads": max(c.peak_threads for c in probe.timed(name)),
        }
        for name in results
    }
    verdict["others_cores_max"] = max(row[-1] for row in r_rows)
    verdict["maps"] = {KEYS[name]: counts for name, counts in maps.items()}
    verdict["cold_advised_vs_faulted"] = cold[COLD_ADVISED].median / cold[COLD_FAULTED].median
    quiet = verdict["others_cores_max"]
    print(
        f"\nload average after: {after['load1']:.2f} {after['load5']:.2f}; other processes "
        f"used up to {quiet:.2f} cores during the quiet rounds"
        + (" (the machine was NOT quiet: read the ranges as noise)" if quiet > 0.25 else "")
    )
    print(
        f"targets: every round >= 0.90 of the ceiling -> worst pipeline round "
        f"{verdict['pipeline_min_vs_ceiling_median']:.2f} of the ceiling's median (worst "
        f"same-round ratio {verdict['worst_round_ratio']:.2f}); ahead of seed-style beyond "
        f"noise -> {verdict['pipeline_ahead_of_seed_style_beyond_noise']}; beside a study "
        f"the pipeline keeps {verdict['pipeline_beside_study']:.2f} of its speed, the "
        f"ceiling {verdict['ceiling_beside_study']:.2f}"
    )
    save(
        "pipeline",
        {
            "notes": notes,
            "batch": BATCH,
            "repeats": REPEATS,
            "machine_before": before,
            "machine_after": after,
            "examples_per_second": {k: m.as_json() for k, m in results.items()},
            "loader_only_examples_per_second": {k: m.as_json() for k, m in alone.items()},
            "cold_notes_per_second": {k: m.as_json() for k, m in cold.items()},
            "beside_a_study_examples_per_second": {k: m.as_json() for k, m in loaded.items()},
            "calls": probe.as_json(),
            "calls_beside_a_study": beside.as_json(),
            "summary": verdict,
        },
        tables={
            "train": (headers, rows),
            "rounds": (r_headers, r_rows),
            "costs": (d_headers, d_rows),
            "loaders": (a_headers, a_rows),
            "maps": (m_headers, m_rows),
            "cold": (c_headers, c_rows),
            "beside": (l_headers, l_rows),
        },
    )
    return verdict


def verdicts(results: dict[str, Measured], loaded: dict[str, Measured]) -> dict:
    pipe, ceiling, seed = results[PIPE], results[CEILING], results[SEED]
    pairs = zip(pipe.samples, ceiling.samples, strict=True)
    return {
        "pipeline_vs_ceiling": pipe.median / ceiling.median,
        "pipeline_min_vs_ceiling_median": pipe.low / ceiling.median,
        "worst_round_ratio": min(p / c for p, c in pairs),
        "pipeline_vs_seed_style": pipe.median / seed.median,
        "pipeline_ahead_of_seed_style_beyond_noise": pipe.low > seed.high,
        "per_note_files_vs_ceiling": results[PER_NOTE].median / ceiling.median,
        "pipeline_beside_study": loaded[PIPE].median / pipe.median,
        "ceiling_beside_study": loaded[CEILING].median / ceiling.median,
        "rounds": {KEYS[name]: clusters(m.samples) for name, m in results.items()},
    }


def _drain(batches) -> None:
    for _ in batches:
        pass
