"""Rendering single notes from a SoundFont, the way NSynth was made: hold 3 s, release 1 s.

Rendering happens at 48 kHz and is decimated 3:1 to 16 kHz, because rendering directly at
16 kHz aliases on high notes. Levels differ by ~20 dB between SoundFonts, so each library
gets one gain from a calibration pass; notes that still clip, and silent notes (keys outside
a preset's sampled range), are dropped and counted. A 10 Hz high-pass removes the DC offset
some SoundFont samples carry, a cue real recordings would not give a classifier.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soxr
from scipy.signal import butter, sosfilt
from tqdm.auto import tqdm

from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.instruments.corpus.plan import (
    Instrument,
    load_soundfont,
    note_plan,
)

log = logging.getLogger(__name__)


#: Bumped whenever rendering changes what a note sounds like or which split it lands in, so
#: old corpora are not reused (3: splits disjoint down to the sample data, samples.json).
RENDER_VERSION = 3
RENDER_RATE = 48_000
HOLD_SECONDS, RELEASE_SECONDS = 3, 1
#: The calibration pass renders every CALIBRATION_STRIDE-th planned note of each instrument
#: and sets each library's gain so the CALIBRATION_QUANTILE of their peaks lands at
#: TARGET_PEAK (about -6 dBFS): typical notes sit well below full scale, the loudest few
#: percent may clip and are dropped.
CALIBRATION_STRIDE = 5
CALIBRATION_QUANTILE = 0.95
TARGET_PEAK = 0.5
#: A note whose peak after gain stays below this (-60 dBFS, ~33 steps of 16-bit PCM) is
#: silence: SoundFonts render nothing for keys outside a preset's sampled range.
SILENT_PEAK = 1e-3
#: Some SoundFont samples carry a DC offset (TimGM6mb's alto sax: a mean of ~0.05 at a peak
#: of ~0.3), a cue no recorded NSynth note has; a 2nd-order high-pass at this frequency
#: removes it and leaves the lowest NSynth pitch (27.5 Hz) within 0.1 dB.
HIGHPASS_HZ = 10.0
_HIGHPASS = butter(2, HIGHPASS_HZ, btype="highpass", fs=SAMPLE_RATE, output="sos")


class Renderer:
    """Renders single notes of one SoundFont through tinysoundfont's low-level mono path."""

    def __init__(self, path: Path) -> None:
        from tinysoundfont._tinysoundfont import OutputMode

        self.sf2 = load_soundfont(path)
        self.mode = OutputMode.Mono
        self.hold = np.zeros(RENDER_RATE * HOLD_SECONDS, dtype=np.float32)
        self.release = np.zeros(RENDER_RATE * RELEASE_SECONDS, dtype=np.float32)

    def note(self, preset: int, pitch: int, velocity: int) -> np.ndarray:
        """4 s at 16 kHz, float32, before any gain.

        reset() first, or the previous note's release tail bleeds in. reset() keeps the
        output settings (tinysoundfont 0.3.7), but they are set again after it so the note
        does not depend on that detail. What reset() leaves behind changes samples by ~1e-6,
        below 16-bit resolution.
        """
        self.sf2.reset()
        self.sf2.set_output(self.mode, RENDER_RATE, 0.0)
        self.sf2.note_on(preset, pitch, velocity / 127.0)
        self.sf2.render(self.hold.data.cast("B"))
        self.sf2.note_off(preset, pitch)
        self.sf2.render(self.release.data.cast("B"))
        # soxr (librosa's resampler) band-limits and decimates 3:1 in ~0.5 ms per note.
        audio = soxr.resample(
            np.concatenate([self.hold, self.release]), RENDER_RATE, SAMPLE_RATE, quality="HQ"
        )
        return sosfilt(_HIGHPASS, audio[:NUM_SAMPLES]).astype(np.float32)


def library_gains(
    instruments: list[Instrument], size: str, *, progress: bool = False
) -> dict[str, float]:
    """Per-library linear gain from a calibration pass over every CALIBRATION_STRIDE-th
    planned note (one gain per library keeps the level differences between its presets)."""
    peaks: dict[str, list[float]] = {}
    renderers: dict[Path, Renderer] = {}
    jobs = [
        (inst, pitch, velocity)
        for inst in instruments
        for pitch, velocity in note_plan(inst, size)[::CALIBRATION_STRIDE]
    ]
    for inst, pitch, velocity in tqdm(
        jobs, desc="calibrating gain", unit="note", disable=not progress
    ):
        if inst.soundfont not in renderers:
            renderers[inst.soundfont] = Renderer(inst.soundfont)
        peak = float(
            np.abs(renderers[inst.soundfont].note(inst.preset_index, pitch, velocity)).max()
        )
        if peak > 0:
            peaks.setdefault(inst.library, []).append(peak)
    gains = {
        lib: TARGET_PEAK / float(np.quantile(p, CALIBRATION_QUANTILE)) for lib, p in peaks.items()
    }
    for lib in {inst.library for inst in instruments} - set(gains):
        gains[lib] = 1.0  # every calibration note silent: its notes will be dropped anyway
    return gains
