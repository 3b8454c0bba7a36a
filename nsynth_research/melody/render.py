"""What a generated melody becomes for a listener: MIDI, a piano-roll picture, a WAV played
by the SoundFont the project already ships (TimGM6mb.sf2 inside pretty_midi, through
tinysoundfont), and one HTML page with the roll beside an audio player.

The page embeds the picture and the audio as data URIs, so it shows the same from the
MLflow UI, a local folder or an e-mail: relative links break inside MLflow's artifact view.
"""

from __future__ import annotations

import base64
import html
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

from nsynth_research.melody.tokens import REST, Event, event_token

TEMPO_BPM = 100
PROGRAM = 0  # acoustic grand piano: the best-sampled preset of TimGM6mb
SAMPLE_RATE = 22_050
VELOCITY = 90
RELEASE_SECONDS = 1.0


def seconds_per_quarter() -> float:
    return 60.0 / TEMPO_BPM


def to_midi(events: Sequence[Event]) -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI(initial_tempo=TEMPO_BPM)
    inst = pretty_midi.Instrument(PROGRAM, name="melody")
    spq, t = seconds_per_quarter(), 0.0
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
        sf2.render(memoryview(block).cast("B"))
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


def wav_bytes(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def piano_roll(primer: Sequence[Event], generated: Sequence[Event], bar: Fraction, title: str):
    """Primer notes grey, generated notes blue, bar lines from the end of the primer on."""
    fig, ax = plt.subplots(figsize=(12, 4))
    t = 0.0
    pitches = []
    for i, e in enumerate([*primer, *generated]):
        if e.pitch != REST:
            colour = "0.6" if i < len(primer) else "tab:blue"
            ax.add_patch(Rectangle((t, e.pitch - 0.4), float(e.duration), 0.8, color=colour))
            pitches.append(e.pitch)
        t += float(e.duration)
    start = float(sum(e.duration for e in primer))
    for x in np.arange(start, t + 1e-9, float(bar)):
        ax.axvline(x, color="0.85", lw=0.8, zorder=0)
    ax.axvline(start, color="tab:red", lw=1.2, label="end of primer")
    low, high = (min(pitches), max(pitches)) if pitches else (60, 72)
    ax.set(xlim=(0, max(t, 1.0)), ylim=(low - 2, high + 2), title=title)
    ax.set_xlabel("quarter notes")
    ticks = range(low - low % 12, high + 2, 12)
    ax.set_yticks(list(ticks), [pretty_midi.note_number_to_name(p) for p in ticks])
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def html_page(title: str, png: bytes, wav: bytes, events: Sequence[Event], notes: str) -> str:
    img = base64.b64encode(png).decode()
    audio = base64.b64encode(wav).decode()
    tokens = html.escape(" ".join(event_token(e) for e in events))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body style="font-family: sans-serif">
<h2>{html.escape(title)}</h2>
<div style="display: flex; gap: 1em; align-items: center; flex-wrap: wrap">
<img src="data:image/png;base64,{img}" style="max-width: 80%" alt="piano roll">
<audio controls src="data:audio/wav;base64,{audio}"></audio>
</div>
<p>{html.escape(notes)}</p>
<p><code>{tokens}</code></p>
</body></html>
"""
