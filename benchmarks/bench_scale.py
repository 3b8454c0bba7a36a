"""5. Scale: peak memory and epoch time of training per cache setting (`RUNS`), on distinct
notes of the default corpus: the float32 cache at 1,024 and 4,096 train notes, and at 1,024
the float16 cache and no cache; each in a fresh process. Streaming means the heap stays flat
while time grows linearly. The measured large point (50k+ distinct notes rendered, packed as
NSynth's archives and read in place, and its projection to NSynth's 289,205 train notes) is
`benchmarks/bench_large.py`; this one compares the cache settings cheaply.

The caches are filled here first, so no child pays for them; each child trains two epochs and
reports the second, so one-off graph tracing does not pass for a per-note cost. Memory is the
heap (RssAnon, sampled): peak RSS also counts the memory-mapped cache pages a child touched,
which grow with the notes read and which the kernel drops under pressure. Disk is the
cache's bytes for the notes trained (frames x bins x itemsize, what `ensure_cached` writes).
Last, what `data.feature_cache: auto` (`choose_cache`) picks on this machine's disk for full
NSynth's train + valid splits (`FULL_NSYNTH_NOTES`), and what each cache would take there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.common import DATA_ROOT, markdown, save, table
from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.features.cache import ITEMSIZE, choose_cache
from nsynth_research.instruments.training import prepare_data

BASE = 1024
#: NSynth's published train + valid notes (289,205 + 12,678).
FULL_NSYNTH_NOTES = 289_205 + 12_678
CHILD = r"""
import json, resource, sys, time
import keras
from pathlib import Path
from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.training import PreparedData, prepare_data, train
from benchmarks.large_measure import AnonPeak
root, n, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cache = ["data.feature_cache=false"] if mode == "none" else [f"data.cache_dtype={mode}"]
cfg = load_config(Path("configs/baseline.yaml"), [f"data.root={root}", "training.epochs=2",
                  "training.early_stopping_patience=null", *cache])
full = prepare_data(cfg, progress=False)
if n > len(full.train):
    raise SystemExit(f"{n} notes asked for, the corpus has {len(full.train)} train notes")
data = PreparedData(root, full.train[:n], full.valid[:64], full.stats, "bench", full.caches)

class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_test_begin(self, logs=None):
        self.seconds.append(time.perf_counter() - self.start)

timer = EpochTimes()
anon = AnonPeak()
train(cfg, data, callbacks=[timer], verbose=0)
print(json.dumps({"seconds": timer.seconds[-1], "peak_anon_mb": anon.stop(),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


#: (cache mode, size factor) per child: the float32 cache at two sizes, and at 1x the float16
#: cache and no cache at all (features computed every epoch).
RUNS = (("float32", 1), ("float32", 4), ("float16", 1), ("none", 1))


def run() -> dict:
    for dtype in ("float32", "float16"):  # fill both caches and the statistics once
        cfg = load_config(
            Path("configs/baseline.yaml"), [f"data.root={DATA_ROOT}", f"data.cache_dtype={dtype}"]
        )
        prepare_data(cfg)
    per_note = {d: cfg.features.frames * cfg.features.bins * n for d, n in ITEMSIZE.items()}
    per_note["none"] = 0
    rows, out = [], {}
    for mode, factor in RUNS:
        n = BASE * factor
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(DATA_ROOT), str(n), mode],
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        out[f"{mode} {factor}x"] = {"notes": n, **got}
    ref = out["float32 1x"]
    for factor, r in out.items():
        r["cache_disk_mb"] = r["notes"] * per_note[factor.split()[0]] / 2**20
        rows.append(
            [
                factor,
                r["notes"],
                r["peak_rss_mb"],
                r["peak_anon_mb"],
                r["peak_anon_mb"] / ref["peak_anon_mb"],
                r["seconds"],
                r["seconds"] / ref["seconds"],
                1000 * r["seconds"] / r["notes"],
                r["cache_disk_mb"],
            ]
        )
    headers = [
        "size",
        "notes",
        "peak RSS MB",
        "heap MB",
        "x 1x heap",
        "epoch s",
        "x 1x time",
        "ms/note",
        "cache disk MB",
    ]
    print(table(headers, rows))
    print(markdown(headers, rows))
    free = shutil.disk_usage(DATA_ROOT).free
    auto = choose_cache(DATA_ROOT, FULL_NSYNTH_NOTES, cfg.features) or "no cache"
    full_gb = {d: FULL_NSYNTH_NOTES * per_note[d] / 1e9 for d in ITEMSIZE}
    print(
        f"full NSynth train + valid ({FULL_NSYNTH_NOTES} notes): float32 cache "
        f"{full_gb['float32']:.0f} GB, float16 {full_gb['float16']:.0f} GB; "
        f"auto picks on this disk ({free / 1e9:.0f} GB free): {auto}"
    )
    save(
        "scale",
        {
            "runs": out,
            "notes": "distinct train notes of the default corpus (no replication)",
            "timed": "second epoch's training phase",
            "bytes_per_note": per_note,
            "full_nsynth": {
                "notes": FULL_NSYNTH_NOTES,
                "cache_gb": full_gb,
                "disk_free_gb": free / 1e9,
                "auto_choice": auto,
            },
        },
        tables={"runs": (headers, rows)},
    )
    return {
        "heap_4x_vs_1x": out["float32 4x"]["peak_anon_mb"] / ref["peak_anon_mb"],
        "time_4x_vs_1x": out["float32 4x"]["seconds"] / ref["seconds"],
    }
