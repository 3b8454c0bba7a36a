"""The streaming input pipeline: right tensors, right normalisation, reproducible order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import (
    NUM_SAMPLES,
    SAMPLE_RATE,
    AugmentConfig,
    FeatureConfig,
)
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.audio_dataset import make_audio_dataset
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.spectrogram import librosa_features
from nsynth_research.instruments.features.stats import FeatureStats
from nsynth_research.instruments.pipeline import make_dataset
from tests.instruments.fakes import build_archive, note_at, write_notes

CFG = FeatureConfig()
REPO = Path(__file__).resolve().parents[2]


def random_stats(seed: int = 0) -> FeatureStats:
    rng = np.random.default_rng(seed)
    mean = rng.uniform(0, 5, (CFG.frames, CFG.bins))
    std = rng.uniform(0, 2, (CFG.frames, CFG.bins))
    std[0, :10] = 0.0  # where eps alone keeps the division finite
    return FeatureStats.from_arrays(mean, std, 10, CFG, "test")


def order_of(ds: tf.data.Dataset, notes: list[Note]) -> list[str]:
    """Note names in the order a (audio, label) dataset yields them, found by their audio."""
    by_audio = {load_audio(n.path).tobytes(): n.note_str for n in notes}
    return [by_audio[audio.numpy().tobytes()] for audio, _ in ds]


@pytest.fixture(scope="module")
def real_notes(tiny_corpus: Path) -> list[Note]:
    notes = read_split(tiny_corpus, "train")
    return notes[:: max(1, len(notes) // 12)][:12]


@pytest.fixture(scope="module")
def small_notes(tmp_path_factory: pytest.TempPathFactory) -> list[Note]:
    return write_notes(tmp_path_factory.mktemp("wavs"), 12)


def test_batches_follow_the_manifest(real_notes: list[Note]) -> None:
    stats = random_stats()
    ds = make_dataset(real_notes, stats, CFG, batch_size=5, shuffle=False, seed=0)
    assert ds.element_spec[0].dtype == tf.float32 and ds.element_spec[1].dtype == tf.int32
    batches = list(ds)
    assert [int(x.shape[0]) for x, _ in batches] == [5, 5, 2]
    features = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert features.shape == (len(real_notes), 251, 513, 1)
    assert labels.tolist() == [n.family for n in real_notes]
    for note, got in zip(real_notes, features, strict=True):
        scale = stats.std + 1e-4
        want = (librosa_features(load_audio(note.path), CFG) - stats.mean) / scale
        # Feature parity is 1e-3 in feature units; division by a near-zero std magnifies it,
        # so the difference is measured back in feature units.
        err = (np.abs(got[..., 0] - want) * scale).max()
        assert err < 1e-3, f"{note.note_str}: max abs difference {err}"


def test_drop_remainder(small_notes: list[Note]) -> None:
    ds = make_dataset(
        small_notes, random_stats(), CFG, batch_size=5, shuffle=True, seed=1, drop_remainder=True
    )
    assert [int(y.shape[0]) for _, y in ds] == [5, 5]
    assert ds.element_spec[0].shape.as_list() == [5, 251, 513, 1]


def test_same_seed_same_batches(small_notes: list[Note]) -> None:
    def run() -> list[np.ndarray]:
        ds = make_dataset(small_notes, random_stats(), CFG, batch_size=4, shuffle=True, seed=7)
        return [x.numpy() for x, _ in ds]

    first, second = run(), run()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_shuffled_order_by_seed_and_epoch(small_notes: list[Note]) -> None:
    manifest = [n.note_str for n in small_notes]
    ds = make_audio_dataset(small_notes, shuffle=True, seed=3, shuffle_buffer=4)
    epoch1, epoch2 = order_of(ds, small_notes), order_of(ds, small_notes)
    assert sorted(epoch1) == sorted(epoch2) == sorted(manifest)
    assert epoch1 != epoch2 and epoch1 != manifest

    fresh = make_audio_dataset(small_notes, shuffle=True, seed=3, shuffle_buffer=4)
    assert [order_of(fresh, small_notes), order_of(fresh, small_notes)] == [epoch1, epoch2]

    other = make_audio_dataset(small_notes, shuffle=True, seed=4, shuffle_buffer=4)
    assert order_of(other, small_notes) != epoch1

    unshuffled = make_audio_dataset(small_notes, shuffle=False)
    assert order_of(unshuffled, small_notes) == order_of(unshuffled, small_notes) == manifest


def test_order_is_the_same_in_another_process(small_notes: list[Note], tmp_path: Path) -> None:
    manifest = tmp_path / "notes.json"
    manifest.write_text(json.dumps([n.__dict__ for n in small_notes]))
    # The other process also sets TensorFlow's global seed, which must not matter.
    script = f"""
import json, tensorflow as tf
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.data.audio_dataset import make_audio_dataset
tf.random.set_seed(12345)
notes = [Note(**d) for d in json.load(open({str(manifest)!r}))]
ds = make_audio_dataset(notes, shuffle=True, seed=3)
print(json.dumps([[int(y) for _, y in ds] for _ in range(2)]))
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # Labels are note index mod 11 with 12 notes: only 0 repeats, so this pins the order.
    ds = make_audio_dataset(small_notes, shuffle=True, seed=3)
    here = [[int(y) for _, y in ds] for _ in range(2)]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


def test_archive_and_files_mixed(tmp_path: Path) -> None:
    loose = write_notes(tmp_path / "loose", 6, seed=1)
    packed_src = write_notes(tmp_path / "packed", 6, seed=2)
    packed = build_archive(tmp_path, packed_src)
    assert all(n.in_archive for n in packed)
    mixed = [x for pair in zip(loose, packed, strict=True) for x in pair]
    renamed = {p.note_str: s for p, s in zip(packed, packed_src, strict=True)}
    by_audio = {load_audio(n.path).tobytes(): n.path for n in loose + packed_src}

    def paths(ds: tf.data.Dataset) -> list[str]:
        return [by_audio[a.numpy().tobytes()] for a, _ in ds]

    unshuffled = paths(make_audio_dataset(mixed, shuffle=False))
    assert unshuffled == [renamed[n.note_str].path if n.in_archive else n.path for n in mixed]

    ds = make_audio_dataset(mixed, shuffle=True, seed=5, shuffle_buffer=3)
    assert ds.cardinality().numpy() == len(mixed)
    epoch1, epoch2 = paths(ds), paths(ds)
    assert sorted(epoch1) == sorted(epoch2) == sorted(unshuffled)
    assert epoch1 != epoch2 and epoch1 != unshuffled
    fresh = make_audio_dataset(mixed, shuffle=True, seed=5, shuffle_buffer=3)
    assert [paths(fresh), paths(fresh)] == [epoch1, epoch2]

    batch = make_dataset(packed, random_stats(), CFG, batch_size=6, shuffle=False, seed=0)
    ((x, y),) = list(batch)
    assert x.shape == (6, 251, 513, 1) and y.numpy().tolist() == [n.family for n in packed]


def test_inputs_are_validated(small_notes: list[Note], tmp_path: Path) -> None:
    stats = random_stats()
    with pytest.raises(DataError, match="empty"):
        make_dataset([], stats, CFG, batch_size=4, shuffle=False, seed=0)
    with pytest.raises(DataError, match="batch size"):
        make_dataset(small_notes, stats, CFG, batch_size=0, shuffle=False, seed=0)
    with pytest.raises(DataError, match="fewer than one batch"):
        make_dataset(
            small_notes, stats, CFG, batch_size=64, shuffle=False, seed=0, drop_remainder=True
        )
    with pytest.raises(DataError, match="shape"):
        make_dataset(
            small_notes, stats, FeatureConfig(hop_length=512), batch_size=4, shuffle=False, seed=0
        )
    with pytest.raises(DataError, match="computed for features"):
        make_dataset(
            small_notes, stats, FeatureConfig(log_scale=10.0), batch_size=4, shuffle=False, seed=0
        )
    bad_label = note_at("x", small_notes[0].path, 11)
    with pytest.raises(DataError, match="family label 11"):
        make_audio_dataset([bad_label], shuffle=False)
    with pytest.raises(DataError, match="shuffle buffer"):
        make_audio_dataset(small_notes, shuffle=True, shuffle_buffer=0)

    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((NUM_SAMPLES, 2)), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(DataError, match="2 channels"):
        make_audio_dataset([note_at("s", str(stereo), 0)], shuffle=False)
    with pytest.raises(DataError, match=r"missing\.wav: not a readable WAV file"):
        make_audio_dataset([note_at("m", str(tmp_path / "missing.wav"), 0)], shuffle=False)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_long_and_non_16_bit_files_read_like_the_reader(tmp_path: Path, subtype: str) -> None:
    # The reader accepts any WAV encoding and cuts longer files to 64000 samples; the pipeline
    # must agree with it, whatever decoder it uses.
    rng = np.random.default_rng(3)
    notes = []
    for i, length in enumerate([NUM_SAMPLES, NUM_SAMPLES + 1234]):
        path = tmp_path / f"n{i}.wav"
        audio = np.clip(0.3 * rng.standard_normal(length), -1, 1)
        sf.write(path, audio, SAMPLE_RATE, subtype=subtype)
        notes.append(note_at(f"n{i}", str(path), i))
    got = [a.numpy() for a, _ in make_audio_dataset(notes, shuffle=False)]
    for note, audio in zip(notes, got, strict=True):
        np.testing.assert_array_equal(audio, load_audio(note.path))


def test_bad_file_mid_stream_names_its_path(small_notes: list[Note], tmp_path: Path) -> None:
    # Every header is checked before the first batch, so a truncated third file is refused
    # up front, by name, not after two batches of training.
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(NUM_SAMPLES // 2), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(DataError, match=r"short\.wav: truncated, 32000 samples"):
        make_audio_dataset([*small_notes[:2], note_at("s", str(short), 0)], shuffle=False)
    # A file damaged after that check still fails in-graph, naming its path.
    fine = tmp_path / "fine.wav"
    sf.write(fine, np.zeros(NUM_SAMPLES), SAMPLE_RATE, subtype="PCM_16")
    ds = make_audio_dataset([*small_notes[:2], note_at("f", str(fine), 0)], shuffle=False)
    sf.write(fine, np.zeros(NUM_SAMPLES // 2), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"shorter than 64000 samples.*fine\.wav"
    ):
        list(ds)


def test_a_corpus_mixing_wav_encodings_is_decoded_file_by_file(tmp_path: Path) -> None:
    # Choosing the decoder from the first file alone would make every later 24-bit or float
    # file fail in TensorFlow's decoder after a 16-bit first file.
    rng = np.random.default_rng(4)
    notes = []
    for i, subtype in enumerate(["PCM_16", "PCM_24", "FLOAT", "PCM_16", "PCM_24"]):
        path = tmp_path / f"m{i}.wav"
        sf.write(
            path,
            np.clip(0.3 * rng.standard_normal(NUM_SAMPLES), -1, 1),
            SAMPLE_RATE,
            subtype=subtype,
        )
        notes.append(note_at(f"m{i}", str(path), i))
    for shuffle in (False, True):
        ds = make_audio_dataset(notes, shuffle=shuffle, seed=1, positions=True)
        got = {int(i): a.numpy() for a, i in ds}
        assert sorted(got) == list(range(len(notes)))
        for i, note in enumerate(notes):
            np.testing.assert_array_equal(got[i], load_audio(note.path))


def test_cached_features_give_identical_batches(real_notes: list[Note], tmp_path: Path) -> None:
    from nsynth_research.instruments.features.cache import ensure_cached

    cache = ensure_cached(real_notes, CFG, tmp_path / "cache", progress=False)
    assert sorted(cache.rows) == sorted(n.note_str for n in real_notes)
    stats = random_stats()
    for shuffle in (False, True):
        kwargs = dict(batch_size=5, shuffle=shuffle, seed=3)
        plain = make_dataset(real_notes, stats, CFG, **kwargs)
        cached = make_dataset(real_notes, stats, CFG, cache=cache, **kwargs)
        assert cached.element_spec == plain.element_spec
        # Known batch counts (12 notes in 5s: 3), so Keras sizes an epoch without a dry pass.
        assert plain.cardinality().numpy() == cached.cardinality().numpy() == 3
        for _ in range(2):  # two epochs: the same per-epoch order on both paths
            for (xa, ya), (xb, yb) in zip(plain, cached, strict=True):
                np.testing.assert_array_equal(xa.numpy(), xb.numpy())
                np.testing.assert_array_equal(ya.numpy(), yb.numpy())
        # Batches kept alive (a caller collecting them) are never overwritten by later ones.
        kept = [x for x, _ in cached] + [x for x, _ in cached]
        again = [x for x, _ in plain] + [x for x, _ in plain]
        for xa, xb in zip(again, kept, strict=True):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
    dropped = make_dataset(
        real_notes, stats, CFG, cache=cache, batch_size=5, shuffle=True, seed=3, drop_remainder=True
    )
    assert dropped.cardinality().numpy() == 2 == len(list(dropped))
    augmented = make_dataset(
        real_notes, stats, CFG, batch_size=5, shuffle=True, seed=3, augment=AugmentConfig(gain_db=3)
    )
    # An autotuned pipeline ran some epochs' steps on one core of two (docs/performance.md).
    for ds in (plain, cached, dropped, augmented):
        assert ds.options().autotune.enabled is False
