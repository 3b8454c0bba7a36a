"""Rendering the embedded default corpus ("nsynth-gm") from General MIDI SoundFonts.

NSynth itself was made by playing sampled instruments at every pitch and velocity, holding
each note 3 s and releasing it for 1 s; this does the same with SoundFont presets, so the
project runs end to end with nothing downloaded. Each preset of each SoundFont is one
instrument; splits are instrument-disjoint, and presets of one GM program in SoundFonts that
share samples (one "library") always land in the same split, or the test set would hear
training samples.

Rendering happens at 48 kHz and is decimated to 16 kHz, because rendering directly at 16 kHz
aliases on high notes. It is idempotent and crash-safe: WAVs appear only complete (temp name
+ rename), examples.json is written last, and a rerun with the same settings does nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
from tqdm.auto import tqdm

from nsynth_research.config import NUM_SAMPLES, SAMPLE_RATE, CorpusConfig
from nsynth_research.errors import DataError
from nsynth_research.families import FAMILIES, gm_program_family
from nsynth_research.nsynth import SPLITS, split_dir

log = logging.getLogger(__name__)

#: Bumped whenever rendering changes what a note sounds like, so old corpora are not reused.
RENDER_VERSION = 1
RENDER_RATE = 48_000
HOLD_SECONDS, RELEASE_SECONDS = 3, 1
TEMP_SUFFIX = ".partial"
#: Typical notes peak here after the per-library gain (about -6 dBFS).
TARGET_PEAK = 0.5
#: Notes quieter than this (peak, after gain) are silence: keys outside a preset's samples.
SILENT_PEAK = 1e-3

#: Plausible MIDI pitch range per family, inside NSynth's 21-108.
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

#: Size presets: pitch step within each family range, velocities, and (tiny only) how many
#: instruments per family and split are kept.
SIZES: dict[str, dict] = {
    "tiny": {"pitch_step": 6, "velocities": (100,), "per_split": 1},
    "default": {"pitch_step": 3, "velocities": (75, 127), "per_split": None},
    "full": {"pitch_step": 1, "velocities": (25, 50, 75, 100, 127), "per_split": None},
}

#: GM programs rendered by electronic or synthetic means; everything else is acoustic.
ELECTRONIC = {4, 5, 16, 17, 18, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36, 37}
SYNTHETIC = {38, 39, *range(80, 88)}


def program_source(program: int) -> str:
    if program in SYNTHETIC:
        return "synthetic"
    return "electronic" if program in ELECTRONIC else "acoustic"


def default_soundfont() -> Path:
    """TimGM6mb.sf2, shipped inside the pretty_midi package: the pip-only default."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@dataclass(frozen=True)
class Instrument:
    """One preset of one SoundFont, named the NSynth way."""

    soundfont: Path
    library: str
    program: int
    preset_name: str
    family: str
    source: str
    instrument_str: str
    index: int
    split: str


@dataclass
class CorpusSummary:
    root: Path
    notes: dict[str, dict[str, int]]
    instruments: dict[str, int]
    dropped_silent: int = 0
    dropped_clipped: int = 0
    seconds: float = 0.0
    rendered: int = 0
    soundfonts: list[str] = field(default_factory=list)

    def format_table(self) -> str:
        width = max(len(f) for f in FAMILIES)
        lines = [f"corpus {self.root} ({', '.join(self.soundfonts)})"]
        lines.append(f"{'family':<{width}} " + " ".join(f"{s:>7}" for s in SPLITS))
        for family in FAMILIES:
            counts = [self.notes.get(s, {}).get(family, 0) for s in SPLITS]
            lines.append(f"{family:<{width}} " + " ".join(f"{c:>7}" for c in counts))
        totals = [sum(self.notes.get(s, {}).values()) for s in SPLITS]
        lines.append(f"{'notes':<{width}} " + " ".join(f"{c:>7}" for c in totals))
        lines.append(
            f"{'instruments':<{width}} "
            + " ".join(f"{self.instruments.get(s, 0):>7}" for s in SPLITS)
        )
        lines.append(
            f"rendered {self.rendered} notes in {self.seconds:.1f} s; dropped "
            f"{self.dropped_silent} silent and {self.dropped_clipped} clipped"
        )
        return "\n".join(lines)


# ----------------------------------------------------------------------------- planning


def _soundfonts(config: CorpusConfig) -> list[Path]:
    paths = [Path(p) for p in config.soundfonts] or [default_soundfont()]
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"SoundFont not found: {path}; fix `soundfonts` in the corpus config "
                "(Debian's fluid-soundfont-gm puts FluidR3_GM.sf2 in /usr/share/sounds/sf2)"
            )
    return paths


def _load_soundfont(path: Path):
    from tinysoundfont._tinysoundfont import SoundFont

    try:
        return SoundFont(str(path))
    except Exception as exc:  # the binding raises bare Exception subclasses for bad files
        raise DataError(f"{path}: not a readable SF2/SF3 SoundFont ({exc})") from None


def assign_splits(groups: dict[str, list[tuple[str, int]]], config: CorpusConfig) -> dict:
    """(library, program) groups of each family -> split, seeded and instrument-disjoint.

    Every family keeps at least one group in train; valid and test get one each wherever the
    family has the groups to spare, so they cover as many families as possible.
    """
    out: dict[tuple[str, int], str] = {}
    for f_index, family in enumerate(FAMILIES):
        members = sorted(groups.get(family, []))
        if not members:
            continue
        rng = np.random.default_rng([config.seed, f_index])
        order = [members[i] for i in rng.permutation(len(members))]
        n = len(order)
        if n == 1:
            n_test = n_valid = 0
        elif n == 2:
            n_test, n_valid = (1, 0) if f_index % 2 == 0 else (0, 1)
        else:
            n_test = max(1, round(n * config.test_fraction))
            n_valid = max(1, round(n * config.valid_fraction))
            while n - n_test - n_valid < 1:
                n_valid, n_test = (
                    (n_valid - 1, n_test) if n_valid >= n_test else (n_valid, n_test - 1)
                )
        for i, group in enumerate(order):
            out[group] = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"
    return out


def plan_instruments(config: CorpusConfig) -> list[Instrument]:
    """Every mapped melodic preset of every SoundFont, named and assigned to a split."""
    found = []
    for path in _soundfonts(config):
        sf2 = _load_soundfont(path)
        library = config.libraries.get(path.stem, path.stem)
        for program in range(128):
            family = gm_program_family(program)
            index = sf2.get_preset_index(0, program)
            if family is None or index < 0:
                continue
            found.append((path, library, program, sf2.get_preset_name(index), family, index))
    groups: dict[str, list[tuple[str, int]]] = {}
    for _, library, program, _, family, _ in found:
        if (library, program) not in groups.setdefault(family, []):
            groups[family].append((library, program))
    splits = assign_splits(groups, config)
    counters: dict[tuple[str, str], int] = {}
    instruments = []
    for path, library, program, name, family, index in found:
        source = program_source(program)
        number = counters.get((family, source), 0)
        counters[(family, source)] = number + 1
        token = "synth_lead" if family == "synth_lead" else family
        instruments.append(
            Instrument(
                path,
                library,
                program,
                name,
                family,
                source,
                f"{token}_{source}_{number:03d}",
                index,
                splits[(library, program)],
            )
        )
    per_split = SIZES[config.size]["per_split"]
    if per_split is not None:
        kept: dict[tuple[str, str], int] = {}
        small = []
        for inst in instruments:
            key = (inst.family, inst.split)
            if kept.get(key, 0) < per_split:
                kept[key] = kept.get(key, 0) + 1
                small.append(inst)
        instruments = small
    return instruments


def note_plan(inst: Instrument, size: str) -> list[tuple[int, int]]:
    low, high = PITCH_RANGES[inst.family]
    preset = SIZES[size]
    return [
        (p, v) for p in range(low, high + 1, preset["pitch_step"]) for v in preset["velocities"]
    ]


# ----------------------------------------------------------------------------- rendering


class Renderer:
    """Renders single notes of one SoundFont with the low-level mono path."""

    def __init__(self, path: Path) -> None:
        from tinysoundfont._tinysoundfont import OutputMode

        self.sf2 = _load_soundfont(path)
        self.mode = OutputMode.Mono

    def note(self, preset: int, pitch: int, velocity: int) -> np.ndarray:
        """4 s at 16 kHz, unscaled. reset() first, or the last note's tail bleeds in."""
        self.sf2.reset()
        self.sf2.set_output(self.mode, RENDER_RATE, 0.0)
        hold = np.zeros(RENDER_RATE * HOLD_SECONDS, dtype=np.float32)
        release = np.zeros(RENDER_RATE * RELEASE_SECONDS, dtype=np.float32)
        self.sf2.note_on(preset, pitch, velocity / 127.0)
        self.sf2.render(memoryview(hold).cast("B"))
        self.sf2.note_off(preset, pitch)
        self.sf2.render(memoryview(release).cast("B"))
        audio = resample_poly(np.concatenate([hold, release]), 1, RENDER_RATE // SAMPLE_RATE)
        return audio[:NUM_SAMPLES].astype(np.float32)


def library_gains(instruments: list[Instrument], size: str) -> dict[str, float]:
    """Per-library gain putting the 95th-percentile note peak at TARGET_PEAK (a calibration
    pass over every 5th note: SoundFonts differ by 20 dB in level)."""
    peaks: dict[str, list[float]] = {}
    renderers: dict[Path, Renderer] = {}
    for inst in instruments:
        renderer = renderers.setdefault(inst.soundfont, Renderer(inst.soundfont))
        for pitch, velocity in note_plan(inst, size)[::5]:
            peak = float(np.abs(renderer.note(inst.index, pitch, velocity)).max())
            if peak > 0:
                peaks.setdefault(inst.library, []).append(peak)
    return {lib: TARGET_PEAK / float(np.quantile(p, 0.95)) for lib, p in peaks.items()}


def _settings(config: CorpusConfig, soundfonts: list[Path]) -> dict:
    def identity(path: Path) -> str:
        with path.open("rb") as handle:
            return f"{path.stat().st_size}:{hashlib.sha256(handle.read(1 << 20)).hexdigest()[:16]}"

    tree = config.model_dump(mode="json")
    tree.pop("root")
    tree["soundfonts"] = {str(p): identity(p) for p in soundfonts}
    settings = {
        "render_version": RENDER_VERSION,
        "config": tree,
        "sizes": SIZES[config.size],
        "pitch_ranges": PITCH_RANGES,
    }
    return json.loads(json.dumps(settings))  # the form it has when read back from render.json


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _entry(inst: Instrument, pitch: int, velocity: int, note_id: int) -> dict:
    return {
        "note": note_id,
        "note_str": f"{inst.instrument_str}-{pitch:03d}-{velocity:03d}",
        "instrument": -1,  # filled once all instruments are known
        "instrument_str": inst.instrument_str,
        "pitch": pitch,
        "velocity": velocity,
        "sample_rate": SAMPLE_RATE,
        "qualities": [0] * 10,
        "qualities_str": [],
        "instrument_family": FAMILIES.index(inst.family),
        "instrument_family_str": inst.family,
        "instrument_source": ["acoustic", "electronic", "synthetic"].index(inst.source),
        "instrument_source_str": inst.source,
        "soundfont": inst.soundfont.name,
        "library": inst.library,
        "bank": 0,
        "program": inst.program,
        "preset_name": inst.preset_name,
    }


def summarize(root: Path, **extra: object) -> CorpusSummary:
    """Notes per split and family, instruments per split, from the written examples.json."""
    notes: dict[str, dict[str, int]] = {}
    instruments: dict[str, int] = {}
    fonts: set[str] = set()
    for split in SPLITS:
        examples = json.loads((split_dir(root, split) / "examples.json").read_text())
        counts: dict[str, int] = {}
        for entry in examples.values():
            counts[entry["instrument_family_str"]] = (
                counts.get(entry["instrument_family_str"], 0) + 1
            )
            fonts.add(entry.get("soundfont", "?"))
        notes[split] = counts
        instruments[split] = len({e["instrument_str"] for e in examples.values()})
    return CorpusSummary(
        root=root, notes=notes, instruments=instruments, soundfonts=sorted(fonts), **extra
    )  # type: ignore[arg-type]


def assert_instrument_disjoint(root: Path) -> None:
    """No instrument, and no (library, program) sample group, may sit in two splits."""
    seen: dict[str, str] = {}
    for split in SPLITS:
        examples = json.loads((split_dir(root, split) / "examples.json").read_text())
        keys = {e["instrument_str"] for e in examples.values()}
        keys |= {
            f"{e['library']}/program {e['program']}" for e in examples.values() if "library" in e
        }
        for key in keys:
            other = seen.setdefault(key, split)
            if other != split:
                raise DataError(
                    f"{root}: {key} appears in both {other} and {split}; splits must be "
                    "instrument-disjoint. Re-render the corpus into an empty root."
                )


def render_corpus(config: CorpusConfig, *, progress: bool = True) -> CorpusSummary:
    """Render (or resume, or confirm up to date) the corpus described by `config`."""
    root = Path(config.root)
    soundfonts = _soundfonts(config)
    settings = _settings(config, soundfonts)
    marker = root / "render.json"
    if marker.is_file():
        previous = json.loads(marker.read_text())
        if previous.get("settings") != settings:
            raise DataError(
                f"{root} holds a corpus rendered with other settings ({marker}); choose another "
                "corpus root or delete that folder to re-render"
            )
        if previous.get("complete"):
            assert_instrument_disjoint(root)
            return summarize(root)
    elif root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists and is not a rendered corpus; choose an empty corpus root")
    root.mkdir(parents=True, exist_ok=True)
    _write_json(marker, {"settings": settings, "complete": False})

    start = time.perf_counter()
    instruments = plan_instruments(config)
    gains = library_gains(instruments, config.size)
    renderers: dict[Path, Renderer] = {}
    entries: dict[str, dict[str, dict]] = {s: {} for s in SPLITS}
    total = sum(len(note_plan(i, config.size)) for i in instruments)
    silent = clipped = rendered = 0
    for split in SPLITS:
        audio_dir = split_dir(root, split) / "audio"
        audio_dir.mkdir(parents=True, exist_ok=True)
        for stale in audio_dir.glob(f"*{TEMP_SUFFIX}"):
            stale.unlink()
    bar = tqdm(total=total, desc="rendering notes", unit="note", disable=not progress)
    note_id = 0
    for inst in instruments:
        renderer = renderers.setdefault(inst.soundfont, Renderer(inst.soundfont))
        audio_dir = split_dir(root, inst.split) / "audio"
        for pitch, velocity in note_plan(inst, config.size):
            bar.update()
            entry = _entry(inst, pitch, velocity, note_id)
            note_id += 1
            final = audio_dir / f"{entry['note_str']}.wav"
            if not final.is_file():
                audio = renderer.note(inst.index, pitch, velocity) * gains.get(inst.library, 1.0)
                peak = float(np.abs(audio).max())
                if peak < SILENT_PEAK:
                    silent += 1
                    continue
                if peak >= 1.0:
                    clipped += 1
                    continue
                tmp = final.with_name(final.name + TEMP_SUFFIX)
                sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
                os.replace(tmp, final)
                rendered += 1
            entries[inst.split][entry["note_str"]] = entry
    bar.close()
    index = {name: i for i, name in enumerate(sorted({i.instrument_str for i in instruments}))}
    for split in SPLITS:
        for entry in entries[split].values():
            entry["instrument"] = index[entry["instrument_str"]]
        _write_json(split_dir(root, split) / "examples.json", entries[split])
    assert_instrument_disjoint(root)
    _write_json(marker, {"settings": settings, "complete": True, "gains": gains})
    seconds = time.perf_counter() - start
    log.info(
        "rendered %d notes in %.1f s; dropped %d silent, %d clipped",
        rendered,
        seconds,
        silent,
        clipped,
    )
    return summarize(
        root, dropped_silent=silent, dropped_clipped=clipped, seconds=seconds, rendered=rendered
    )
