"""2. Feature extraction: the project's batched tf.signal paths vs a per-file librosa loop.

Contenders, interleaved and repeated (`common.interleaved`): the seed's librosa loop (the
reference), the project's default float64 STFT, the float32 STFT, float32 log-mel, the float64
FFT alone on audio already in memory (a bound on any path that keeps librosa's precision), and
reading features back from the feature cache (what every epoch after the first costs).

Two more bounds split the project's float32 path in its halves, to say where a goal like 5x
the librosa loop stands on this machine: reading and decoding the WAV files alone (the
project's tf.data reader, no features), and the float32 features alone on audio already in
memory (no reading). A pipeline that overlaps the two on 2 cores cannot beat the slower half.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import librosa
import numpy as np
import tensorflow as tf

from benchmarks.common import DATA_ROOT, interleaved, markdown, ratio_rows, save, table
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.audio_dataset import make_audio_dataset
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.cache import ensure_cached
from nsynth_research.instruments.features.spectrogram import tf_features

NOTES, BATCH, REPEATS = 256, 32, 5
SEED = "seed-style (librosa.load + stft per file)"
FAST = {
    "project float64 STFT (default)": FeatureConfig(),
    "project float32 STFT": FeatureConfig(fft_precision="float32"),
    "project float32 log-mel (128 bands)": FeatureConfig(kind="logmel", fft_precision="float32"),
}


def run() -> dict:
    cfg = FeatureConfig()
    notes = read_split(DATA_ROOT, "train")[:NOTES]
    audio = tf.constant(np.stack([load_audio(n.path) for n in notes]))
    window = tf.signal.hann_window(cfg.n_fft, periodic=True, dtype=tf.float64)

    @tf.function(jit_compile=True)
    def fft_only(batch: tf.Tensor) -> tf.Tensor:
        padded = tf.pad(batch, [[0, 0], [cfg.n_fft // 2, cfg.n_fft // 2]])
        frames = tf.signal.frame(padded, cfg.n_fft, cfg.hop_length)
        return tf.signal.rfft(tf.cast(frames, tf.float64) * window)

    def project(fcfg: FeatureConfig):
        def go() -> None:
            ds = make_audio_dataset(notes, shuffle=False, seed=0).batch(BATCH)
            ds = ds.map(lambda a, y: tf_features(a, fcfg), num_parallel_calls=tf.data.AUTOTUNE)
            for _ in ds.prefetch(2):
                pass

        return go

    def seed_loop() -> None:
        for note in notes:
            audio, _ = librosa.load(note.path, sr=16000)
            np.log1p(1000 * np.abs(librosa.stft(audio, n_fft=1024, hop_length=256)))

    def fft_bound() -> None:
        for start in range(0, NOTES, BATCH):
            fft_only(audio[start : start + BATCH])

    def read_bound() -> None:
        for _ in make_audio_dataset(notes, shuffle=False, seed=0).batch(BATCH).prefetch(2):
            pass

    float32 = FAST["project float32 STFT"]

    def float32_bound() -> None:
        for start in range(0, NOTES, BATCH):
            tf_features(audio[start : start + BATCH], float32).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        with_cache = ensure_cached(notes, cfg, Path(tmp), progress=False)

        def cache_read() -> None:
            for _ in with_cache.batches(notes, batch_size=BATCH, shuffle=False, seed=0).prefetch(2):
                pass

        contenders = {
            SEED: seed_loop,
            **{name: project(fcfg) for name, fcfg in FAST.items()},
            "bound: float64 FFT alone, audio in memory": fft_bound,
            "bound: reading + decoding the WAVs alone (tf.data)": read_bound,
            "bound: float32 STFT features alone, audio in memory": float32_bound,
            "feature cache read (epochs after the first)": cache_read,
        }
        rates = interleaved(contenders, NOTES, repeats=REPEATS)
    headers, rows = ratio_rows(rates, SEED, "notes/s")
    print(table(headers, rows))
    print(markdown(headers, rows))
    best = max(FAST, key=lambda k: rates[k].median)
    ratio = rates[best].median / rates[SEED].median
    print(f"target: >= 5x the librosa loop -> {ratio:.2f}x ({best})")
    save(
        "features",
        {
            "notes": NOTES,
            "batch": BATCH,
            "repeats": REPEATS,
            "reference": SEED,
            "notes_per_second": {k: m.as_json() for k, m in rates.items()},
            "x_reference": {k: m.median / rates[SEED].median for k, m in rates.items()},
            "overlaps_reference": {k: m.overlaps(rates[SEED]) for k, m in rates.items()},
            "fastest_path": best,
            "speedup": ratio,
        },
        tables={"extraction": (headers, rows)},
    )
    return {"speedup": ratio}
