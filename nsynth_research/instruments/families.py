"""The NSynth label space and the General MIDI program -> family table, kept in one place."""

from __future__ import annotations

from nsynth_research.core.errors import DataError

#: NSynth's instrument families in label-index order.
FAMILIES: tuple[str, ...] = (
    "bass",
    "brass",
    "flute",
    "guitar",
    "keyboard",
    "mallet",
    "organ",
    "reed",
    "string",
    "synth_lead",
    "vocal",
)
NUM_CLASSES = len(FAMILIES)
FAMILY_INDEX: dict[str, int] = {name: i for i, name in enumerate(FAMILIES)}

#: General MIDI program ranges (inclusive) for each family; programs not listed are excluded
#: (pads, effects, percussion, ...) because NSynth has no family for them.
GM_PROGRAM_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "keyboard": ((0, 7),),
    "mallet": ((8, 15),),
    "organ": ((16, 20),),
    "reed": ((21, 23), (64, 71)),
    "guitar": ((24, 31),),
    "bass": ((32, 39),),
    "string": ((40, 46), (48, 51)),
    "vocal": ((52, 54),),
    "brass": ((56, 63),),
    "flute": ((72, 79),),
    "synth_lead": ((80, 85), (87, 87)),
}


def gm_program_family(program: int) -> str | None:
    """Family of a General MIDI program (0-127), or None where NSynth has no such family."""
    for family, ranges in GM_PROGRAM_RANGES.items():
        if any(lo <= program <= hi for lo, hi in ranges):
            return family
    return None


def family_index(name: str, where: str = "") -> int:
    """Label index of a family name; an unknown name is a DataError naming `where`."""
    try:
        return FAMILY_INDEX[name]
    except KeyError:
        place = f" in {where}" if where else ""
        raise DataError(
            f"unknown instrument family {name!r}{place}; expected one of {', '.join(FAMILIES)}"
        ) from None


def family_from_note_str(note_str: str) -> str:
    """Family name from an NSynth note name: the first '_' token, 'synth' meaning synth_lead."""
    token = note_str.split("_", 1)[0]
    return "synth_lead" if token == "synth" else token
