"""What a rendered corpus holds (notes per split and family, instruments per split), and the
check that its splits share no instrument and no sample group."""

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
    return CorpusSummary(
        root=Path(root), notes=notes, instruments=instruments, soundfonts=sorted(fonts), **extra
    )


def assert_instrument_disjoint(root: Path | str) -> None:
    """Raise DataError if an instrument, or a (library, program) sample group, sits in two
    splits: validation and test accuracy would then measure memorised instruments."""
    root = Path(root)
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        for entry in read_examples(split_dir(root, split) / "examples.json").values():
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
