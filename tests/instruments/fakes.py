"""Fake NSynth-format notes for tests: real WAV files with known content."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.instruments.data.notes import Note


def write_notes(folder: Path, count: int, seed: int = 0) -> list[Note]:
    """Short distinct noises saved as NSynth-format WAVs; family = index mod 11."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    notes = []
    for i in range(count):
        name = f"guitar_acoustic_{i:03d}-060-100"
        path = folder / f"{name}.wav"
        sf.write(path, 0.2 * rng.standard_normal(NUM_SAMPLES), SAMPLE_RATE, subtype="PCM_16")
        notes.append(note_at(name, str(path), i % 11, i))
    return notes


def note_at(name: str, path: str, family: int, instrument: int = 0) -> Note:
    return Note(
        note_str=name,
        path=path,
        family=family,
        instrument_str=name.split("-")[0],
        instrument=instrument,
        source=0,
        pitch=60,
        velocity=100,
    )


def build_archive(folder: Path, notes: list[Note]) -> list[Note]:
    """Pack the notes' WAVs into a .tar.gz the way NSynth ships, and point notes into it."""
    archive = folder / "nsynth-train.jsonwav.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for note in notes:
            tar.add(note.path, arcname=f"nsynth-train/audio/{note.note_str}.wav")
    return [
        note_at(n.note_str, f"{archive}::nsynth-train/audio/{n.note_str}.wav", n.family)
        for n in notes
    ]


def write_tones(folder: Path, count: int, seed: int = 0) -> list[Note]:
    """Decaying tones plus noise, different per note, saved as NSynth-format WAVs."""
    rng = np.random.default_rng(seed)
    t = np.arange(NUM_SAMPLES) / SAMPLE_RATE
    notes = []
    for i in range(count):
        pitch = int(rng.integers(24, 100))
        freq = 440 * 2 ** ((pitch - 69) / 12)
        tone = 0.6 * np.sin(2 * np.pi * freq * t) * np.exp(-t * rng.uniform(0, 3))
        audio = tone + 0.01 * rng.standard_normal(NUM_SAMPLES)
        name = f"bass_synthetic_{i:03d}-{pitch:03d}-100"
        path = folder / f"{name}.wav"
        sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
        notes.append(
            Note(
                note_str=name,
                path=str(path),
                family=i % 11,
                instrument_str=name.split("-")[0],
                instrument=i,
                source=2,
                pitch=pitch,
                velocity=100,
            )
        )
    return notes
