"""Planning the embedded corpus: which SoundFont presets become which NSynth instruments,
which notes each plays, and which split each lands in.

Each bank-0 preset whose GM program maps to an NSynth family is one instrument. Splits are
instrument-disjoint, and presets of one GM program in SoundFonts that share samples (one
"library", see `CorpusConfig.libraries`) always land in the same split, or the test set
would hear training samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import CorpusConfig
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


def soundfonts(config: CorpusConfig) -> list[Path]:
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


def load_soundfont(path: Path) -> Any:
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
    for path in soundfonts(config):
        sf2 = load_soundfont(path)
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
