"""Rendering the embedded default corpus ("nsynth-gm") from General MIDI SoundFonts.

NSynth was made by playing sampled instruments at every pitch and velocity, holding each
note 3 s and releasing it for 1 s; this does the same with SoundFont presets, so the
project runs end to end with nothing downloaded. Each bank-0 preset of each SoundFont whose
GM program maps to an NSynth family is one instrument. Splits are instrument-disjoint, and
presets of one GM program in SoundFonts that share samples (one "library", see
`CorpusConfig.libraries`) always land in the same split, or the test set would hear
training samples.

Rendering happens at 48 kHz and is decimated 3:1 to 16 kHz, because rendering directly at
16 kHz aliases on high notes. Levels differ by ~20 dB between SoundFonts, so each library
gets one gain from a calibration pass; notes that still clip, and silent notes (keys outside
a preset's sampled range), are dropped and counted. A 10 Hz high-pass removes the DC offset
some SoundFont samples carry, a cue real recordings would not give a classifier.

The render is idempotent and crash-safe: WAVs appear only complete (temp name + rename),
examples.json is written last, `render.json` records the settings, a rerun with the same
settings does nothing (or resumes an interrupted render), and a rerun with other settings
into the same root is refused rather than mixing two corpora. A lock file serialises
concurrent renders of one root (e.g. parallel sweep workers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, sosfilt
from tqdm.auto import tqdm

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, CorpusConfig
from nsynth_research.instruments.data.reader import SOURCES, SPLITS, format_listing, split_dir
from nsynth_research.instruments.families import FAMILIES, gm_program_family

log = logging.getLogger(__name__)

#: Bumped whenever rendering changes what a note sounds like, so old corpora are not reused.
RENDER_VERSION = 2
RENDER_RATE = 48_000
HOLD_SECONDS, RELEASE_SECONDS = 3, 1
#: Suffix of files being written; the reader only sees `*.wav`, and a rerun deletes these.
TEMP_SUFFIX = ".partial"
LOCK_NAME = ".render.lock"
MARKER_NAME = "render.json"
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

#: Plausible MIDI pitch range per family, inside NSynth's 21-108: bass does not play at
#: flute pitches, and notes far outside an instrument's range teach nothing useful.
PITCH_RANGES: dict[str, tuple[int, int]] = {
    "bass": (28, 67),
    "brass": (40, 88),
    "flute": (60, 96),
    "guitar": (40, 88),
    "keyboard": (21, 108),
    "mallet": (48, 96),
    "organ": (36, 96),
    "reed": (45, 88),
    "string": (36, 96),
    "synth_lead": (36, 96),
    "vocal": (48, 84),
}


@dataclass(frozen=True)
class SizePreset:
    """How much of each instrument is rendered."""

    #: Every `pitch_step`-th pitch of the family's range, starting at its low end.
    pitch_step: int
    #: MIDI velocities, from NSynth's {25, 50, 75, 100, 127}.
    velocities: tuple[int, ...]
    #: Keep at most this many instruments per (family, split); None keeps all.
    per_split: int | None


#: tiny: tests; one instrument per family and split, so every split has every family, ~190
#: notes, rendered in seconds. default: ~3,100 notes from TimGM6mb.sf2 (every 3rd pitch, a
#: soft and a hard velocity), small enough for several CNN trials of a 20-minute sweep on two
#: cores. full: NSynth's own grid, every pitch and all five velocities.
SIZES: dict[str, SizePreset] = {
    "tiny": SizePreset(pitch_step=10, velocities=(100,), per_split=1),
    "default": SizePreset(pitch_step=3, velocities=(75, 127), per_split=None),
    "full": SizePreset(pitch_step=1, velocities=(25, 50, 75, 100, 127), per_split=None),
}

#: NSynth's sources: acoustic (the default), electronic (pickups, electric organs and
#: pianos) and synthetic (synthesizers). GM programs by source:
ELECTRONIC_PROGRAMS = frozenset({4, 5, 7, 16, 17, 18, *range(26, 32), *range(33, 38)})
SYNTHETIC_PROGRAMS = frozenset({38, 39, *range(80, 88)})


def program_source(program: int) -> str:
    """NSynth source name of a GM program."""
    if program in SYNTHETIC_PROGRAMS:
        return "synthetic"
    return "electronic" if program in ELECTRONIC_PROGRAMS else "acoustic"


def default_soundfont() -> Path:
    """TimGM6mb.sf2, shipped inside the pretty_midi package: the pip-only default."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@dataclass(frozen=True)
class Instrument:
    """One preset of one SoundFont, named the NSynth way and assigned to a split."""

    soundfont: Path
    library: str
    program: int
    preset_index: int
    preset_name: str
    family: str
    source: str
    instrument_str: str
    split: str

    @property
    def group(self) -> tuple[str, int]:
        """Presets sharing samples: they must share a split."""
        return (self.library, self.program)


@dataclass
class CorpusSummary:
    """What a corpus holds, and what the last `render_corpus` call did."""

    root: Path
    #: split -> family name -> note count (families without notes are left out).
    notes: dict[str, dict[str, int]]
    #: split -> number of instruments.
    instruments: dict[str, int]
    dropped_silent: int = 0
    dropped_clipped: int = 0
    #: Wall time of the call (near 0 when the corpus was already complete).
    seconds: float = 0.0
    #: Notes rendered by this call (0 when the corpus was up to date).
    rendered: int = 0
    soundfonts: list[str] = field(default_factory=list)

    def format_table(self) -> str:
        width = max(len(f) for f in (*FAMILIES, "instruments"))
        head = f"corpus {self.root}" + (
            f" ({', '.join(self.soundfonts)})" if self.soundfonts else ""
        )
        lines = [head, f"{'family':<{width}} " + " ".join(f"{s:>7}" for s in SPLITS)]
        for family in FAMILIES:
            counts = [self.notes.get(s, {}).get(family, 0) for s in SPLITS]
            lines.append(f"{family:<{width}} " + " ".join(f"{c:>7}" for c in counts))
        totals = [sum(self.notes.get(s, {}).values()) for s in SPLITS]
        lines.append(f"{'notes':<{width}} " + " ".join(f"{c:>7}" for c in totals))
        lines.append(
            f"{'instruments':<{width}} "
            + " ".join(f"{self.instruments.get(s, 0):>7}" for s in SPLITS)
        )
        dropped = f"dropped {self.dropped_silent} silent and {self.dropped_clipped} clipped notes"
        if self.rendered:
            lines.append(f"rendered {self.rendered} notes in {self.seconds:.1f} s; {dropped}")
        else:
            lines.append(f"up to date, nothing rendered ({self.seconds:.1f} s); {dropped}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- planning


def _soundfonts(config: CorpusConfig) -> list[Path]:
    paths = [Path(p) for p in config.soundfonts] or [default_soundfont()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"SoundFont not found: {', '.join(missing)}; fix `soundfonts` in the corpus config "
            "(Debian's fluid-soundfont-gm installs /usr/share/sounds/sf2/FluidR3_GM.sf2), or "
            "leave it empty for TimGM6mb.sf2 from pretty_midi"
        )
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise DataError(
            f"SoundFont file names must be unique (they name the notes' `soundfont`): {names}"
        )
    return paths


def _load_soundfont(path: Path) -> Any:
    from tinysoundfont._tinysoundfont import SoundFont

    try:
        return SoundFont(str(path))
    except Exception as exc:  # the binding raises RuntimeError for unreadable files
        raise DataError(
            f"{path}: not a readable SF2/SF3 SoundFont ({exc}); check the file or remove it "
            "from `soundfonts`"
        ) from None


def assign_splits(
    groups: dict[str, list[tuple[str, int]]], config: CorpusConfig
) -> dict[tuple[str, int], str]:
    """(library, program) groups of each family -> split, seeded and instrument-disjoint.

    Every family keeps at least one group in train (a model cannot learn a family it never
    hears); valid and test get one each wherever the family has groups to spare, so they
    cover as many families as the instruments allow: 1 group -> train only, 2 -> train and
    a seeded one of valid/test, >= 3 -> at least one each, otherwise by the fractions.
    """
    out: dict[tuple[str, int], str] = {}
    for f_index, family in enumerate(FAMILIES):
        members = sorted(set(groups.get(family, [])))
        if not members:
            continue
        rng = np.random.default_rng([config.seed, f_index])
        order = [members[i] for i in rng.permutation(len(members))]
        n = len(order)
        if n == 1:
            n_test = n_valid = 0
        elif n == 2:
            n_test = int(rng.integers(2))
            n_valid = 1 - n_test
        else:
            n_test = max(1, round(n * config.test_fraction))
            n_valid = max(1, round(n * config.valid_fraction))
            while n - n_test - n_valid < 1:
                if n_valid >= n_test:
                    n_valid -= 1
                else:
                    n_test -= 1
        for i, group in enumerate(order):
            out[group] = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"
    return out


def plan_instruments(config: CorpusConfig) -> list[Instrument]:
    """Every mapped melodic (bank 0) preset of every SoundFont, named and given a split.

    Numbering (`<family>_<source>_<NNN>`) runs over all presets before the size preset
    subsets them, so an instrument keeps its name across sizes.
    """
    found = []
    for path in _soundfonts(config):
        sf2 = _load_soundfont(path)
        library = config.libraries.get(path.stem, path.stem)
        for program in range(128):
            family = gm_program_family(program)
            if family is None:
                continue
            index = sf2.get_preset_index(0, program)
            if index < 0:
                continue
            found.append((path, library, program, index, sf2.get_preset_name(index), family))
    groups: dict[str, list[tuple[str, int]]] = {}
    for _, library, program, _, _, family in found:
        groups.setdefault(family, []).append((library, program))
    splits = assign_splits(groups, config)
    counters: dict[tuple[str, str], int] = {}
    instruments = []
    for path, library, program, index, name, family in found:
        source = program_source(program)
        number = counters.get((family, source), 0)
        counters[(family, source)] = number + 1
        instruments.append(
            Instrument(
                soundfont=path,
                library=library,
                program=program,
                preset_index=index,
                preset_name=name,
                family=family,
                source=source,
                instrument_str=f"{family}_{source}_{number:03d}",
                split=splits[(library, program)],
            )
        )
    per_split = SIZES[config.size].per_split
    if per_split is not None:
        kept: dict[tuple[str, str], int] = {}
        subset = []
        for inst in instruments:
            key = (inst.family, inst.split)
            if kept.get(key, 0) < per_split:
                kept[key] = kept.get(key, 0) + 1
                subset.append(inst)
        instruments = subset
    return instruments


def note_plan(inst: Instrument, size: str) -> list[tuple[int, int]]:
    """(pitch, velocity) pairs rendered for one instrument."""
    low, high = PITCH_RANGES[inst.family]
    preset = SIZES[size]
    return [(p, v) for p in range(low, high + 1, preset.pitch_step) for v in preset.velocities]


# ----------------------------------------------------------------------------- rendering


class Renderer:
    """Renders single notes of one SoundFont through tinysoundfont's low-level mono path."""

    def __init__(self, path: Path) -> None:
        from tinysoundfont._tinysoundfont import OutputMode

        self.sf2 = _load_soundfont(path)
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
        self.sf2.render(memoryview(self.hold).cast("B"))
        self.sf2.note_off(preset, pitch)
        self.sf2.render(memoryview(self.release).cast("B"))
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


def _file_identity(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _settings(config: CorpusConfig, soundfonts: list[Path]) -> dict[str, Any]:
    """Everything that decides the corpus's content, as it reads back from render.json.

    SoundFonts are identified by name and content, not path, so a moved file or a
    re-created virtualenv does not invalidate a corpus.
    """
    tree = config.model_dump(mode="json")
    tree.pop("root")
    tree["soundfonts"] = [_file_identity(p) for p in soundfonts]
    settings = {
        "render_version": RENDER_VERSION,
        "renderer": f"tinysoundfont {metadata.version('tinysoundfont')}, soxr {soxr.__version__}",
        "config": tree,
        "size": asdict(SIZES[config.size]),
        "pitch_ranges": PITCH_RANGES,
        "sources": {
            "electronic": sorted(ELECTRONIC_PROGRAMS),
            "synthetic": sorted(SYNTHETIC_PROGRAMS),
        },
        "render": {
            "rate": RENDER_RATE,
            "hold_seconds": HOLD_SECONDS,
            "release_seconds": RELEASE_SECONDS,
            "calibration": [CALIBRATION_STRIDE, CALIBRATION_QUANTILE, TARGET_PEAK],
            "silent_peak": SILENT_PEAK,
            "highpass_hz": HIGHPASS_HZ,
        },
    }
    return json.loads(json.dumps(settings))


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _read_examples(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing: the corpus is incomplete; run `make data` again"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path} is not valid JSON ({exc}); delete the corpus folder and render it again"
        ) from None


def _entry(inst: Instrument, pitch: int, velocity: int, note_id: int) -> dict[str, Any]:
    """An examples.json entry: NSynth's fields (qualities unknown: all zero) plus provenance."""
    return {
        "note": note_id,
        "note_str": f"{inst.instrument_str}-{pitch:03d}-{velocity:03d}",
        "instrument": -1,  # set once every instrument is known
        "instrument_str": inst.instrument_str,
        "pitch": pitch,
        "velocity": velocity,
        "sample_rate": SAMPLE_RATE,
        "qualities": [0] * 10,
        "qualities_str": [],
        "instrument_family": FAMILIES.index(inst.family),
        "instrument_family_str": inst.family,
        "instrument_source": SOURCES[inst.source],
        "instrument_source_str": inst.source,
        "soundfont": inst.soundfont.name,
        "library": inst.library,
        "bank": 0,
        "program": inst.program,
        "preset_name": inst.preset_name,
    }


def summarize(root: Path, **extra: Any) -> CorpusSummary:
    """Notes per split and family, instruments per split, from the written examples.json."""
    notes: dict[str, dict[str, int]] = {}
    instruments: dict[str, int] = {}
    fonts: set[str] = set()
    for split in SPLITS:
        examples = _read_examples(split_dir(root, split) / "examples.json")
        counts: dict[str, int] = {}
        for entry in examples.values():
            family = entry["instrument_family_str"]
            counts[family] = counts.get(family, 0) + 1
            if "soundfont" in entry:
                fonts.add(entry["soundfont"])
        notes[split] = {f: counts[f] for f in FAMILIES if f in counts}
        instruments[split] = len({e["instrument_str"] for e in examples.values()})
    return CorpusSummary(
        root=Path(root), notes=notes, instruments=instruments, soundfonts=sorted(fonts), **extra
    )


def assert_instrument_disjoint(root: Path | str) -> None:
    """Raise DataError if an instrument, or a (library, program) sample group, sits in two
    splits: validation and test accuracy would then measure memorised instruments."""
    root = Path(root)
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        for entry in _read_examples(split_dir(root, split) / "examples.json").values():
            seen.setdefault(f"instrument {entry['instrument_str']}", set()).add(split)
            if "library" in entry and "program" in entry:
                group = f"library {entry['library']} program {entry['program']}"
                seen.setdefault(group, set()).add(split)
    leaks = sorted(
        f"{key} ({' and '.join(s for s in SPLITS if s in splits)})"
        for key, splits in seen.items()
        if len(splits) > 1
    )
    if leaks:
        raise DataError(
            f"{root}: splits are not instrument-disjoint, {len(leaks)} instrument(s) or sample "
            f"group(s) appear in more than one split: {format_listing(leaks)}. Delete the "
            "corpus folder and render it again (or fix the examples.json files)."
        )


def _complete(root: Path) -> bool:
    """Every examples.json present and every note it lists has its WAV."""
    for split in SPLITS:
        directory = split_dir(root, split)
        meta = directory / "examples.json"
        if not meta.is_file() or not (directory / "audio").is_dir():
            return False
        with os.scandir(directory / "audio") as entries:
            present = {e.name[:-4] for e in entries if e.name.endswith(".wav")}
        if not set(_read_examples(meta)) <= present:
            return False
    return True


def _refuse_foreign(root: Path) -> None:
    """A non-empty root that is not a rendered corpus (say, a real NSynth download) is
    never written into."""
    if not root.is_dir() or (root / MARKER_NAME).is_file():
        return
    ours = {LOCK_NAME, MARKER_NAME + TEMP_SUFFIX}
    other = sorted(p.name for p in root.iterdir() if p.name not in ours)
    if other:
        raise DataError(
            f"{root} exists and is not a rendered corpus (no {MARKER_NAME}; it holds "
            f"{format_listing(other)}); choose an empty or new corpus root"
        )


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Exclusive lock on the corpus root for the whole render: concurrent workers wait,
    then find the corpus complete."""
    import fcntl

    with (root / LOCK_NAME).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process rendering %s", root)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_marker(root: Path) -> dict[str, Any] | None:
    marker = root / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or "settings" not in data:
        raise DataError(f"{marker} is damaged; delete the corpus folder {root} and render it again")
    return data


def render_corpus(config: CorpusConfig, *, progress: bool = True) -> CorpusSummary:
    """Render the corpus described by `config`, resume an interrupted render, or confirm
    that it is complete (then nothing is rendered and the call takes well under a second)."""
    start = time.perf_counter()
    root = Path(config.root)
    settings = _settings(config, _soundfonts(config))
    _refuse_foreign(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        marker = _read_marker(root)
        if marker is not None and marker["settings"] != settings:
            raise DataError(
                f"{root} holds a corpus rendered with other settings (see {root / MARKER_NAME}:"
                " size, seed, fractions, SoundFonts or renderer differ); choose another corpus "
                "root, or delete that folder to re-render it"
            )
        if marker is not None and marker.get("complete") and _complete(root):
            assert_instrument_disjoint(root)
            return summarize(
                root,
                dropped_silent=int(marker.get("dropped_silent", 0)),
                dropped_clipped=int(marker.get("dropped_clipped", 0)),
                seconds=time.perf_counter() - start,
            )
        return _render(config, root, settings, marker, progress, start)


def _render(
    config: CorpusConfig,
    root: Path,
    settings: dict[str, Any],
    marker: dict[str, Any] | None,
    progress: bool,
    start: float,
) -> CorpusSummary:
    instruments = plan_instruments(config)
    if not instruments:
        raise DataError(
            f"no General MIDI melodic presets (bank 0, programs of NSynth's families) in "
            f"{', '.join(str(p) for p in _soundfonts(config))}; use General MIDI SoundFonts"
        )
    # Gains are kept from the interrupted attempt so resumed notes match the earlier ones.
    gains = (marker or {}).get("gains") or library_gains(
        instruments, config.size, progress=progress
    )
    marker_path = root / MARKER_NAME
    _write_json(marker_path, {"settings": settings, "complete": False, "gains": gains})
    for split in SPLITS:
        audio_dir = split_dir(root, split) / "audio"
        audio_dir.mkdir(parents=True, exist_ok=True)
        for stale in audio_dir.glob(f"*{TEMP_SUFFIX}"):
            stale.unlink()

    renderers: dict[Path, Renderer] = {}
    entries: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in SPLITS}
    plans = [(inst, note_plan(inst, config.size)) for inst in instruments]
    silent = clipped = rendered = note_id = 0
    with tqdm(
        total=sum(len(p) for _, p in plans),
        desc="rendering notes",
        unit="note",
        disable=not progress,
    ) as bar:
        for inst, plan in plans:
            audio_dir = split_dir(root, inst.split) / "audio"
            for pitch, velocity in plan:
                bar.update()
                entry = _entry(inst, pitch, velocity, note_id)
                note_id += 1
                final = audio_dir / f"{entry['note_str']}.wav"
                if not final.is_file():
                    if inst.soundfont not in renderers:
                        renderers[inst.soundfont] = Renderer(inst.soundfont)
                    audio = renderers[inst.soundfont].note(inst.preset_index, pitch, velocity)
                    audio *= gains[inst.library]
                    peak = float(np.abs(audio).max())
                    if peak < SILENT_PEAK:
                        silent += 1
                        log.debug("dropped silent note %s (peak %.2g)", entry["note_str"], peak)
                        continue
                    if peak >= 1.0:
                        clipped += 1
                        log.debug("dropped clipped note %s (peak %.2f)", entry["note_str"], peak)
                        continue
                    tmp = final.with_name(final.name + TEMP_SUFFIX)
                    pcm = np.round(audio * 32767).astype(np.int16)  # faster than libsndfile's
                    sf.write(tmp, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
                    os.replace(tmp, final)
                    rendered += 1
                entries[inst.split][entry["note_str"]] = entry

    index = {name: i for i, name in enumerate(sorted({i.instrument_str for i in instruments}))}
    for split in SPLITS:
        for entry in entries[split].values():
            entry["instrument"] = index[entry["instrument_str"]]
        _write_json(split_dir(root, split) / "examples.json", entries[split])
    assert_instrument_disjoint(root)
    _write_json(
        marker_path,
        {
            "settings": settings,
            "complete": True,
            "gains": gains,
            "dropped_silent": silent,
            "dropped_clipped": clipped,
        },
    )
    seconds = time.perf_counter() - start
    log.info(
        "rendered %d notes into %s in %.1f s; dropped %d silent and %d clipped notes",
        rendered,
        root,
        seconds,
        silent,
        clipped,
    )
    summary = summarize(
        root, dropped_silent=silent, dropped_clipped=clipped, seconds=seconds, rendered=rendered
    )
    absent = [f for f in FAMILIES if f not in summary.notes["train"]]
    if absent:
        log.warning("families without train notes in %s: %s", root, ", ".join(absent))
    return summary
