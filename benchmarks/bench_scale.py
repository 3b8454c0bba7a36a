"""5. Scale: peak memory of one training epoch at 1x, 4x and 16x a base note count (the
default corpus's train notes replicated), each in a fresh process, reading features from the
feature cache as training does by default. Streaming means memory stays flat while time grows
linearly."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.common import DATA_ROOT, save, table

BASE = 256
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from nsynth_research.config import load_config
from nsynth_research.feature_cache import cache_dir, ensure_cached
from nsynth_research.nsynth import read_split
from nsynth_research.training import PreparedData, train
from nsynth_research.stats import load_or_compute_stats
root, n = Path(sys.argv[1]), int(sys.argv[2])
cfg = load_config(Path("configs/baseline.yaml"), [f"data.root={root}", "training.epochs=1"])
notes = read_split(root, "train")
valid = read_split(root, "valid")[:64]
caches = {
    split: ensure_cached(split_notes, cfg.features, cache_dir(root, split, cfg.features))
    for split, split_notes in (("train", notes), ("valid", valid))
}
stats = load_or_compute_stats(root, notes, cfg.features, progress=False, cache=caches["train"])
many = tuple((notes * (n // len(notes) + 1))[:n])
data = PreparedData(root, many, tuple(valid), stats, "bench", caches)
start = time.perf_counter()
result = train(cfg, data, verbose=0)
print(json.dumps({"seconds": result.train_seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run() -> dict:
    rows, out = [], {}
    for factor in (1, 4, 16):
        n = BASE * factor
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(DATA_ROOT), str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        out[factor] = {"notes": n, **got}
    ref = out[1]
    for factor, r in out.items():
        rows.append(
            [
                f"{factor}x",
                r["notes"],
                r["peak_rss_mb"],
                r["peak_rss_mb"] / ref["peak_rss_mb"],
                r["seconds"],
                r["seconds"] / ref["seconds"],
            ]
        )
    print(table(["size", "notes", "peak RSS MB", "x 1x memory", "epoch s", "x 1x time"], rows))
    save("scale", {"runs": out})
    return {
        "memory_16x_vs_1x": out[16]["peak_rss_mb"] / ref["peak_rss_mb"],
        "time_16x_vs_1x": out[16]["seconds"] / ref["seconds"],
    }
