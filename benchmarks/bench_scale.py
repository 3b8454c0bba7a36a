"""5. Scale: peak memory and epoch time of training, per cache setting (`RUNS`): the float32
cache at 1x, 4x and 16x a base note count (the default corpus's train notes replicated), and
the float16 cache and no cache at 4x; each in a fresh process. Streaming means memory stays
flat while time grows linearly. Replicated notes re-read the same files, which the page cache
then serves: full NSynth (145 GB as float32) would not fit in it, so its reads are disk-bound
and these times are a lower bound there.

The caches are filled here first, so no child pays for them; each child trains two epochs and
reports the second, so one-off graph tracing does not pass for a per-note cost. Disk is the
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

BASE = 256
#: NSynth's published train + valid notes (289,205 + 12,678).
FULL_NSYNTH_NOTES = 289_205 + 12_678
CHILD = r"""
import json, resource, sys, time
import keras
from pathlib import Path
from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.training import PreparedData, prepare_data, train
root, n, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cache = ["data.feature_cache=false"] if mode == "none" else [f"data.cache_dtype={mode}"]
cfg = load_config(Path("configs/baseline.yaml"), [f"data.root={root}", "training.epochs=2",
                  "training.early_stopping_patience=null", *cache])
full = prepare_data(cfg, progress=False)
many = tuple((full.train * (n // len(full.train) + 1))[:n])
data = PreparedData(root, many, full.valid[:64], full.stats, "bench", full.caches)

class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_test_begin(self, logs=None):
        self.seconds.append(time.perf_counter() - self.start)

timer = EpochTimes()
train(cfg, data, callbacks=[timer], verbose=0)
print(json.dumps({"seconds": timer.seconds[-1],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


#: (cache mode, size factor) per child: the float32 cache at three sizes, and at 4x the
#: float16 cache and no cache at all (features computed every epoch).
RUNS = (("float32", 1), ("float32", 4), ("float32", 16), ("float16", 4), ("none", 4))


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
                r["peak_rss_mb"] / ref["peak_rss_mb"],
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
        "x 1x memory",
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
            "timed": "second epoch's training phase",
            "bytes_per_note": per_note,
            "full_nsynth": {
                "notes": FULL_NSYNTH_NOTES,
                "cache_gb": full_gb,
                "disk_free_gb": free / 1e9,
                "auto_choice": auto,
            },
        },
    )
    return {
        "memory_16x_vs_1x": out["float32 16x"]["peak_rss_mb"] / ref["peak_rss_mb"],
        "time_16x_vs_1x": out["float32 16x"]["seconds"] / ref["seconds"],
    }
