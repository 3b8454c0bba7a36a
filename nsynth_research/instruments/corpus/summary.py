"""What a rendered corpus holds (notes per split and family, presets and sample groups per
split), and the check that its splits share no instrument, no sample group and no sample."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.data.notes import SPLITS, format_listing, split_dir
from nsynth_research.instruments.families import FAMILIES

log = logging.getLogger(__name__)

#: Root file listing each rendered instrument's split and the hashes of the samples it plays.
SAMPLES_NAME = "samples.json"


@dataclass
class CorpusSummary:
    """What a corpus holds, and what the last `render_corpus` call did."""

    root: Path
    #: split -> family name -> note count (families without notes are left out).
    notes: dict[str, dict[str, int]]
    #: split -> number of instruments (one SoundFont preset each).
    instruments: dict[str, int]
    #: split -> number of sample groups (presets sharing sample data count once).
    groups: dict[str, int] = field(default_factory=dict)
    dropped_silent: int = 0
    dropped_clipped: int = 0
    #: Wall time of the call (near 0 when the corpus was already complete).
    seconds: float = 0.0
    #: Notes rendered by this call (0 when the corpus was up to date).
    rendered: int = 0
    soundfonts: list[str] = field(default_factory=list)

    def format_table(self) -> str:
        width = max(len(f) for f in (*FAMILIES, "sample groups"))
        head = f"corpus {self.root}" + (
            f" ({', '.join(self.soundfonts)})" if self.soundfonts else ""
        )
        lines = [head, f"{'family':<{width}} " + " ".join(f"{s:>7}" for s in SPLITS)]
        for family in FAMILIES:
            counts = [self.notes.get(s, {}).get(family, 0) for s in SPLITS]
            lines.append(f"{family:<{width}} " + " ".join(f"{c:>7}" for c in counts))
        totals = [sum(self.notes.get(s, {}).values()) for s in SPLITS]
        lines.append(f"{'notes':<{width}} " + " ".join(f"{c:>7}" for c in totals))
        for label, per_split in (("presets", self.instruments), ("sample groups", self.groups)):
            if per_split:
                lines.append(
                    f"{label:<{width}} " + " ".join(f"{per_split.get(s, 0):>7}" for s in SPLITS)
                )
        dropped = f"dropped {self.dropped_silent} silent and {self.dropped_clipped} clipped notes"
        if self.rendered:
            lines.append(f"rendered {self.rendered} notes in {self.seconds:.1f} s; {dropped}")
        else:
            lines.append(f"up to date, nothing rendered ({self.seconds:.1f} s); {dropped}")
        return "\n".join(lines)


def read_examples(path: Path) -> dict[str, dict[str, Any]]:
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


def summarize(root: Path, **extra: Any) -> CorpusSummary:
    """Notes per split and family, instruments per split, from the written examples.json."""
    notes: dict[str, dict[str, int]] = {}
    instruments: dict[str, int] = {}
    groups: dict[str, int] = {}
    fonts: set[str] = set()
    for split in SPLITS:
        examples = read_examples(split_dir(root, split) / "examples.json")
        counts: dict[str, int] = {}
        for entry in examples.values():
            family = entry["instrument_family_str"]
            counts[family] = counts.get(family, 0) + 1
            if "soundfont" in entry:
                fonts.add(entry["soundfont"])
        notes[split] = {f: counts[f] for f in FAMILIES if f in counts}
        instruments[split] = len({e["instrument_str"] for e in examples.values()})
        if all("sample_group" in e for e in examples.values()):
            groups[split] = len({e["sample_group"] for e in examples.values()})
    return CorpusSummary(
        root=Path(root),
        notes=notes,
        instruments=instruments,
        groups=groups,
        soundfonts=sorted(fonts),
        **extra,
    )


def assert_instrument_disjoint(root: Path | str) -> None:
    """Raise DataError if an instrument, a (library, program), a sample group or a single
    sample's data sits in two splits: validation and test accuracy would then measure
    memorised audio. Sample hashes come from the corpus's samples.json, which the check
    reads independently of how the planner grouped presets."""
    root = Path(root)
    seen: dict[str, set[str]] = {}
    notes: dict[str, str] = {}
    for split in SPLITS:
        for entry in read_examples(split_dir(root, split) / "examples.json").values():
            seen.setdefault(f"instrument {entry['instrument_str']}", set()).add(split)
            notes[entry["instrument_str"]] = split
            if "library" in entry and "program" in entry:
                group = f"library {entry['library']} program {entry['program']}"
                seen.setdefault(group, set()).add(split)
            if "sample_group" in entry:
                seen.setdefault(f"sample group {entry['sample_group']}", set()).add(split)
    for name, splits in shared_samples(root, notes).items():
        seen.setdefault(f"sample {name}", set()).update(splits)
    leaks = sorted(
        f"{key} ({' and '.join(s for s in SPLITS if s in splits)})"
        for key, splits in seen.items()
        if len(splits) > 1
    )
    if leaks:
        raise DataError(
            f"{root}: splits are not sample-disjoint, {len(leaks)} instrument(s), sample "
            f"group(s) or sample(s) appear in more than one split: {format_listing(leaks)}. "
            "Delete the corpus folder and render it again (or fix the examples.json files)."
        )


def shared_samples(root: Path, splits: dict[str, str]) -> dict[str, set[str]]:
    """Sample hash -> the splits whose rendered instruments (instrument -> split, from
    examples.json) play it, from samples.json; a corpus without that file has none listed."""
    path = Path(root) / SAMPLES_NAME
    if not path.is_file():
        return {}
    played: dict[str, set[str]] = {}
    for name, info in read_examples(path).items():
        if name in splits:
            for digest in info["samples"]:
                played.setdefault(digest, set()).add(splits[name])
    return played
