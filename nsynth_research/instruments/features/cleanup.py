"""`make clean-cache`: remove a data root's feature caches and say how much disk that frees.

Nothing here imports TensorFlow, so the command answers at once.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nsynth_research.core.errors import UserError
from nsynth_research.instruments.features.rows import CACHE_DIR


@dataclass(frozen=True)
class Reclaimed:
    """What `clean_cache` removed: (folder, bytes on disk) per cache, and the total."""

    removed: tuple[tuple[Path, int], ...]

    @property
    def total(self) -> int:
        return sum(size for _, size in self.removed)


def clean_cache(root: Path) -> Reclaimed:
    """Remove every feature cache under `<root>/features/` (any layout, any front-end) and
    say how much disk that frees. Train statistics stay: they are kilobytes to megabytes and
    cost a full pass over train to recompute. Caches refill themselves on the next run."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"no data root at {root}; give the corpus folder, e.g. data/nsynth-gm")
    folder = root / CACHE_DIR
    removed = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        size = disk_usage(entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append((entry, size))
    return Reclaimed(tuple(removed))


def disk_usage(path: Path) -> int:
    """Bytes a file or folder occupies on disk (allocated blocks, as `du` counts them)."""
    stat = path.lstat()
    if not path.is_dir() or path.is_symlink():
        return stat.st_blocks * 512
    total = stat.st_blocks * 512
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            total += os.lstat(os.path.join(base, name)).st_blocks * 512
    return total
