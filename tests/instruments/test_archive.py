"""NSynth archives: packed as the official downloads, read in place in one pass, the manifest
remembered, WAVs decoded without libsndfile, and batches read ahead in a thread."""

from __future__ import annotations

import io
import os
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import nsynth_research.instruments.data.reader as reader_module
from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.instruments.corpus.pack import pack_corpus
from nsynth_research.instruments.data import audio as audio_module
from nsynth_research.instruments.data.audio import audio_batches, iter_audio, load_audio
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.data.wav import decode_pcm16, parse_pcm16


def labels(notes: list) -> list[tuple]:
    return [(n.note_str, n.family, n.instrument_str, n.pitch, n.velocity) for n in notes]


@pytest.fixture(scope="module")
def archives(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("archives")
    pack_corpus(tiny_corpus, out, progress=False)
    return out


def test_packed_like_the_official_downloads(tiny_corpus: Path, archives: Path) -> None:
    assert sorted(p.name for p in archives.iterdir()) == [
        f"nsynth-{s}.jsonwav.tar.gz" for s in ("test", "train", "valid")
    ]
    with tarfile.open(archives / "nsynth-valid.jsonwav.tar.gz", "r:gz") as tar:
        names = tar.getnames()
    wavs = sorted(p.name for p in (tiny_corpus / "nsynth-valid" / "audio").iterdir())
    assert names == ["nsynth-valid/examples.json", *(f"nsynth-valid/audio/{w}" for w in wavs)]
    for split in ("train", "valid", "test"):
        folder, packed = read_split(tiny_corpus, split), read_split(archives, split)
        assert labels(packed) == labels(folder)
        assert all(n.path.startswith(f"{archives}/nsynth-{split}.jsonwav.tar.gz::") for n in packed)
    folder = {n.note_str: a for n, a in iter_audio(read_split(tiny_corpus, "valid"))}
    for note, audio in iter_audio(read_split(archives, "valid")):
        np.testing.assert_array_equal(audio, folder[note.note_str])


def test_an_unchanged_archive_is_listed_once(
    archives: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NSYNTH_HASH_CACHE", str(tmp_path / "hashes"))
    unchecked = read_split(archives, "test", check_audio=False)
    scans = []
    real = reader_module.members
    monkeypatch.setattr(reader_module, "members", lambda *a, **k: scans.append(a) or real(*a, **k))
    assert labels(read_split(archives, "test", check_audio=False)) == labels(unchecked)
    assert scans == []  # remembered
    checked = read_split(archives, "test")  # the audio was not checked then: read again
    assert len(scans) == 1 and labels(checked) == labels(unchecked)
    assert read_split(archives, "test") == checked and len(scans) == 1
    archive = archives / "nsynth-test.jsonwav.tar.gz"
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    read_split(archives, "test")  # touched: read again
    assert len(scans) == 2


def test_reading_stops_at_the_last_note_asked_for(tmp_path: Path, archives: Path) -> None:
    # The archive cut short after its first notes: reading those must not reach the damage.
    data = (archives / "nsynth-train.jsonwav.tar.gz").read_bytes()
    cut = tmp_path / "nsynth-train.jsonwav.tar.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    notes = read_split(archives, "train", check_audio=False)
    first = [n for n, _ in zip(iter_audio(notes), range(2), strict=False)]
    moved = [type(n)(**{**vars(n), "path": n.path.replace(str(archives), str(tmp_path))})
             for n, _ in first]  # fmt: skip
    assert [n for n, _ in iter_audio(moved)] == moved
    with pytest.raises(DataError, match=r"not a readable \.tar\.gz"):
        read_split(tmp_path, "train")


def wav_bytes(audio: np.ndarray, subtype: str, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    data = np.stack([audio] * channels, axis=1) if channels > 1 else audio
    sf.write(buffer, data, SAMPLE_RATE, subtype=subtype, format="WAV")
    return buffer.getvalue()


def test_pcm16_is_decoded_as_soundfile_does() -> None:
    audio = np.random.default_rng(0).uniform(-1, 1, NUM_SAMPLES + 100).astype(np.float32)
    for channels in (1, 2):
        data = wav_bytes(audio, "PCM_16", channels)
        header = parse_pcm16(data)
        assert header is not None and header.channels == channels
        expected = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0][:NUM_SAMPLES, 0]
        np.testing.assert_array_equal(decode_pcm16(data, header, NUM_SAMPLES), expected)
    # A chunk before `data` (a LIST of metadata) is walked over.
    plain = wav_bytes(audio, "PCM_16")
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde\x00"
    moved = plain[:36] + extra + plain[36:]
    moved = moved[:4] + struct.pack("<I", len(moved) - 8) + moved[8:]
    header = parse_pcm16(moved)
    assert header is not None and header.frames == NUM_SAMPLES + 100
    np.testing.assert_array_equal(
        decode_pcm16(moved, header, 10), decode_pcm16(plain, parse_pcm16(plain), 10)
    )


def test_other_encodings_go_through_soundfile(tmp_path: Path) -> None:
    audio = (0.5 * np.sin(np.arange(NUM_SAMPLES) * 0.01)).astype(np.float32)
    for subtype in ("FLOAT", "PCM_24"):
        data = wav_bytes(audio, subtype)
        assert parse_pcm16(data) is None
        path = tmp_path / f"{subtype}.wav"
        path.write_bytes(data)
        np.testing.assert_allclose(load_audio(str(path)), audio, atol=1e-4)
    assert parse_pcm16(b"RIFF\x00\x00\x00\x00WAVEdata") is None
    assert parse_pcm16(b"not a wav file at all") is None


def test_batches_are_iter_audio_read_ahead(archives: Path, tiny_corpus: Path) -> None:
    for root in (archives, tiny_corpus):
        notes = read_split(root, "train")
        flat = list(iter_audio(notes))
        batches = list(audio_batches(notes, 7))
        assert [len(b) for b, _ in batches] == [7] * (len(notes) // 7) + (
            [len(notes) % 7] if len(notes) % 7 else []
        )
        assert [n for b, _ in batches for n in b] == [n for n, _ in flat]
        np.testing.assert_array_equal(np.concatenate([a for _, a in batches]),
                                      np.stack([a for _, a in flat]))  # fmt: skip


def test_a_stopped_consumer_stops_the_reader(
    archives: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = read_split(archives, "train")
    before = threading.active_count()
    stream = audio_batches(notes, 2, read_ahead=1)
    next(stream)
    stream.close()
    assert threading.active_count() == before

    def broken(notes):
        yield from []
        raise DataError("the disk went away")

    monkeypatch.setattr(audio_module, "iter_audio", broken)
    with pytest.raises(DataError, match="the disk went away"):
        list(audio_batches(notes, 2))
