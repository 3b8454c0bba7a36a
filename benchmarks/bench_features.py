"""2. Feature extraction: the project's batched tf.signal path vs a per-file librosa loop."""

from __future__ import annotations

import librosa
import numpy as np
import tensorflow as tf

from benchmarks.common import DATA_ROOT, median_time, save, table
from nsynth_research.config import FeatureConfig
from nsynth_research.features import tf_features
from nsynth_research.nsynth import read_split
from nsynth_research.pipeline import make_audio_dataset

NOTES, REPEATS = 256, 3


def run() -> dict:
    cfg = FeatureConfig()
    notes = read_split(DATA_ROOT, "train")[:NOTES]

    def project() -> None:
        ds = make_audio_dataset(notes, shuffle=False, seed=0).batch(64)
        ds = ds.map(lambda a, y: tf_features(a, cfg), num_parallel_calls=tf.data.AUTOTUNE)
        for _ in ds.prefetch(2):
            pass

    def seed_loop() -> None:
        for note in notes:
            audio, _ = librosa.load(note.path, sr=16000)
            np.log1p(1000 * np.abs(librosa.stft(audio, n_fft=1024, hop_length=256)))

    project()
    seed_loop()
    rates = {
        "project (tf.data + batched tf.signal)": NOTES / median_time(project, REPEATS),
        "seed-style (librosa.load + stft per file)": NOTES / median_time(seed_loop, REPEATS),
    }
    ref = rates["seed-style (librosa.load + stft per file)"]
    print(
        table(
            ["feature path", "notes/s", "x seed-style"], [[k, v, v / ref] for k, v in rates.items()]
        )
    )
    ratio = rates["project (tf.data + batched tf.signal)"] / ref
    print(f"target: >= 5x -> {ratio:.2f}x")
    save("features", {"notes": NOTES, "notes_per_second": rates, "speedup": ratio})
    return {"speedup": ratio}
