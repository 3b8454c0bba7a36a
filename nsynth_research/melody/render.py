"""What a melody becomes for a listener: MIDI in the tune's metre and key, audio played by the
SoundFont the project already ships (TimGM6mb.sf2 inside pretty_midi, through tinysoundfont),
and a piano roll with the tune's barlines.

MIDI has no anacrusis: a file starts on a downbeat. A tune that starts with a pickup is
therefore written after a rest that completes the pickup's bar, so every barline of the file
falls where the tune's barlines are, and a score editor or music21 shows the same bars.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pretty_midi
import soundfile as sf
from matplotlib.patches import Rectangle

from nsynth_research.melody.metre import Key, Metre, downbeat_shift
from nsynth_research.melody.tokens import REST, Event

TEMPO_BPM = 100
PROGRAM = 0  # acoustic grand piano: the best-sampled preset of TimGM6mb
SAMPLE_RATE = 22_050
VELOCITY = 90
RELEASE_SECONDS = 1.0
PRIMER_COLOUR = "0.6"


def seconds_per_quarter() -> float:
    return 60.0 / TEMPO_BPM


def key_number(key: Key) -> int:
    """pretty_midi's key number: 0-11 major, 12-23 minor; a church mode is written as the
    major key of its signature (MIDI knows only major and minor)."""
    if key.mode == "minor":
        return 12 + key.tonic
    if key.mode == "major":
        return key.tonic
    return (7 * key.sharps) % 12


def to_midi(
    events: Sequence[Event], metre: Metre, key: Key, pickup: Fraction
) -> pretty_midi.PrettyMIDI:
    """One melody track with the time signature and key signature at time 0, its first note
    placed after the rest that puts an anacrusis at the end of the first bar."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=TEMPO_BPM)
    midi.time_signature_changes.append(
        pretty_midi.TimeSignature(metre.numerator, metre.denominator, 0.0)
    )
    midi.key_signature_changes.append(pretty_midi.KeySignature(key_number(key), 0.0))
    inst = pretty_midi.Instrument(PROGRAM, name="melody")
    spq = seconds_per_quarter()
    t = float(downbeat_shift(metre.bar, pickup)) * spq
    for e in events:
        end = t + float(e.duration) * spq
        if e.pitch != REST:
            inst.notes.append(pretty_midi.Note(VELOCITY, e.pitch, t, end))
        t = end
    midi.instruments.append(inst)
    return midi


def default_soundfont() -> Path:
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def render_wav(events: Sequence[Event], soundfont: Path | None = None) -> np.ndarray:
    """Mono float32 audio at SAMPLE_RATE: each note held for its duration, then released."""
    from tinysoundfont._tinysoundfont import OutputMode, SoundFont

    sf2 = SoundFont(str(soundfont or default_soundfont()))
    sf2.set_output(OutputMode.Mono, SAMPLE_RATE, 0.0)
    preset = sf2.get_preset_index(0, PROGRAM)
    chunks = []

    def render(seconds: float) -> None:
        block = np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)
        sf2.render(block.data.cast("B"))
        chunks.append(block)

    for e in events:
        if e.pitch != REST:
            sf2.note_on(preset, e.pitch, VELOCITY / 127.0)
        render(float(e.duration) * seconds_per_quarter())
        if e.pitch != REST:
            sf2.note_off(preset, e.pitch)
    render(RELEASE_SECONDS)
    audio = np.concatenate(chunks)
    peak = float(np.abs(audio).max())
    return audio / peak * 0.8 if peak > 0 else audio


def audio_bytes(audio: np.ndarray, fmt: str = "WAV") -> bytes:
    """WAV (16-bit) for files; OGG (Vorbis) for pages, about a tenth of the size."""
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, format=fmt, subtype="PCM_16" if fmt == "WAV" else None)
    return buf.getvalue()


def piano_roll(
    primer: Sequence[Event],
    continuation: Sequence[Event],
    *,
    bar: Fraction,
    pickup: Fraction,
    title: str,
    colour: str = "tab:blue",
    pitch_range: tuple[int, int] | None = None,
):
    """Primer notes grey, the continuation coloured, the tune's barlines (anacrusis counted)
    and a red line where the primer ends; x in quarter notes from the first note."""
    fig, ax = plt.subplots(figsize=(10, 1.9))
    t = 0.0
    pitches = []
    for i, e in enumerate([*primer, *continuation]):
        if e.pitch != REST:
            c = PRIMER_COLOUR if i < len(primer) else colour
            ax.add_patch(Rectangle((t, e.pitch - 0.4), float(e.duration), 0.8, color=c))
            pitches.append(e.pitch)
        t += float(e.duration)
    first_bar = float(pickup % bar) if pickup % bar else float(bar)
    for x in np.arange(first_bar, t + 1e-9, float(bar)):
        ax.axvline(x, color="0.8", lw=0.8, zorder=0)
    ax.axvline(float(sum(e.duration for e in primer)), color="tab:red", lw=1.2)
    low, high = pitch_range or ((min(pitches), max(pitches)) if pitches else (60, 72))
    ax.set(xlim=(0, max(t, 1.0)), ylim=(low - 2, high + 2))
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_xlabel("quarter notes (grey: primer; vertical lines: barlines)", fontsize=8)
    ticks = [p for p in range(low - low % 12, high + 3, 12) if low - 2 <= p <= high + 2]
    ax.set_yticks(ticks, [pretty_midi.note_number_to_name(p) for p in ticks], fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


def figure_png(fig, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
