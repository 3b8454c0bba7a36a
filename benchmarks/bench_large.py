"""Large run: a 50k+ note NSynth-format corpus rendered, packed as the official archives, read
in place, and a subsample -> full-fit study run on it; every figure measured here, then scaled
to NSynth's 289,205 train notes from this measured point (docs/scale.md).

Stages, each kept in `<work>/bench_large.json` so a rerun resumes (NSYNTH_LARGE_REDO=a,b
redoes some; NSYNTH_LARGE_STAGES=a,b runs only those):
  render      size `nsynth` (every key 21-108 x 5 velocities of every TimGM6mb + Merlin preset)
  pack        nsynth-{train,valid,test}.jsonwav.tar.gz under <work>/archives
  read        notes/s reading + decoding the first READ_NOTES train notes, archive in place vs
              folder, interleaved rounds
  first_pass  per layout, a fresh process with a fresh hash cache: manifest, fingerprint,
              feature-cache fill (train + valid, float16 STFT), statistics pass, peak RSS; the
              folder's cache is deleted after (disk), the archive's kept for what follows
  epoch       the seed model, two epochs on the whole train split (archive root's cache), the
              second timed; peak RSS
  study       experiments/nsynth.yaml on the archives (NSYNTH_LARGE_STUDY: extra overrides)
  fill_paths  features of the first FILL_NOTES train notes by the fill's reader (audio read
              ahead in a thread) and by tf.data's from_generator, from each layout
The work folder is NSYNTH_LARGE_DIR (default data/large; ~40 GB at size nsynth).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.large_measure import AnonPeak, disk_bytes, load_average, peak_rss_mb

WORK = Path(os.environ.get("NSYNTH_LARGE_DIR", "data/large"))
CORPUS, ARCHIVES, STATE = WORK / "nsynth-gm", WORK / "archives", WORK / "bench_large.json"
SIZE = os.environ.get("NSYNTH_LARGE_SIZE", "nsynth")
READ_NOTES = 4000
#: What every first pass and the study cache: the seed's STFT as float16 (~258 kB a note).
CACHE = ["data.feature_cache=true", "data.cache_dtype=float16"]
#: Notes each fill path computes features for, per round, in `fill_paths`.
FILL_NOTES = 1500
STAGES = ("render", "pack", "read", "first_pass", "epoch", "study", "fill_paths")


def _child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a stage's measurement in a fresh process; its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_large", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"bench_large {args[0]} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stage_render() -> dict[str, Any]:
    from nsynth_research.instruments.config import load_corpus_config
    from nsynth_research.instruments.corpus.build import render_corpus

    config = load_corpus_config(Path("configs/corpus.yaml"), [f"root={CORPUS}", f"size={SIZE}"])
    summary = render_corpus(config)
    print(summary.format_table())
    notes = {s: sum(f.values()) for s, f in summary.notes.items()}
    return {
        "size": SIZE, "notes": notes, "total_notes": sum(notes.values()),
        "instruments": summary.instruments, "rendered": summary.rendered,
        "seconds": summary.seconds, "dropped_silent": summary.dropped_silent,
        "dropped_clipped": summary.dropped_clipped,
        "wav_bytes": disk_bytes([CORPUS / f"nsynth-{s}" for s in notes]),
    }  # fmt: skip


def stage_pack() -> dict[str, Any]:
    from nsynth_research.instruments.corpus.pack import pack_corpus

    packed = pack_corpus(CORPUS, ARCHIVES)
    return {p.split: {"seconds": p.seconds, "notes": p.notes, "archive_bytes": p.archive_bytes,
                      "content_bytes": p.content_bytes} for p in packed}  # fmt: skip


def stage_read() -> dict[str, Any]:
    from benchmarks.common import interleaved, ratio_rows, table
    from nsynth_research.instruments.data.audio import iter_audio
    from nsynth_research.instruments.data.reader import read_split

    archived = read_split(ARCHIVES, "train", check_audio=False)
    order = {n.note_str: n for n in archived}
    first = []
    for _, (note, _audio) in zip(range(READ_NOTES), iter_audio(archived), strict=False):
        first.append(note.note_str)  # the archive's first members, in archive order
    folder = {n.note_str: n for n in read_split(CORPUS, "train", check_audio=False)}

    def drain(notes: list) -> None:
        for _ in iter_audio(notes):
            pass

    results = interleaved(
        {
            "archive in place (.tar.gz)": lambda: drain([order[n] for n in first]),
            "folder (WAV files)": lambda: drain([folder[n] for n in first]),
        },
        len(first),
    )
    print(table(*ratio_rows(results, "folder (WAV files)", "notes/s")))
    return {"notes": len(first), "notes_per_second": {k: m.as_json() for k, m in results.items()}}


def stage_fill_paths() -> dict[str, Any]:
    """Features of the first FILL_NOTES train notes (archive order), as a cache fill computes
    them, by two paths: `audio_batches` (read ahead in a thread, the fill's) and tf.data's
    `computed_features` (archive members through `from_generator`); from each layout."""
    from benchmarks.common import interleaved, ratio_rows, table
    from nsynth_research.instruments.config import FeatureConfig
    from nsynth_research.instruments.data.audio import audio_batches, iter_audio
    from nsynth_research.instruments.data.reader import read_split
    from nsynth_research.instruments.features.batches import computed_features
    from nsynth_research.instruments.features.spectrogram import tf_features

    cfg = FeatureConfig()
    archived = read_split(ARCHIVES, "train", check_audio=False)
    first = [n for _, (n, _a) in zip(range(FILL_NOTES), iter_audio(archived), strict=False)]
    folder = {n.note_str: n for n in read_split(CORPUS, "train", check_audio=False)}
    layouts = {"archive": first, "folder": [folder[n.note_str] for n in first]}

    def threaded(notes: list) -> None:
        for _, audio in audio_batches(notes, 32):
            tf_features(audio, cfg).numpy()

    def dataset(notes: list) -> None:
        for x, _ in computed_features(notes, cfg, batch_size=32, shuffle=False, seed=0,
                                      positions=True):  # fmt: skip
            x.numpy()

    contenders = {
        f"{layout}, {name}": (lambda f=f, notes=notes: f(notes))
        for layout, notes in layouts.items()
        for name, f in (("audio_batches", threaded), ("tf.data from_generator", dataset))
    }
    results = interleaved(contenders, len(first))
    print(table(*ratio_rows(results, "folder, audio_batches", "notes/s")))
    return {"notes": len(first), "load": load_average(),
            "notes_per_second": {k: m.as_json() for k, m in results.items()}}  # fmt: skip


def stage_first_pass() -> dict[str, Any]:
    out = {}
    for layout, root in (("archive", ARCHIVES), ("folder", CORPUS)):
        hashes = WORK / f"hash-cache-{layout}"
        shutil.rmtree(hashes, ignore_errors=True)  # the first pass, not a remembered one
        shutil.rmtree(root / "features", ignore_errors=True)
        shutil.rmtree(root / "stats", ignore_errors=True)
        before = load_average()
        out[layout] = {**_child("first_pass", str(root), env={"NSYNTH_HASH_CACHE": str(hashes)}),
                       "load_before": before, "load_after": load_average()}  # fmt: skip
        if layout == "folder":
            shutil.rmtree(root / "features", ignore_errors=True)
    return out


def first_pass(root: Path) -> dict[str, Any]:
    """Child: what `prepare_data` does for a study's first trial, phase by phase."""
    from nsynth_research.instruments.config import load_config
    from nsynth_research.instruments.data.fingerprint import data_fingerprint
    from nsynth_research.instruments.features.cache import cache_dir, ensure_cached
    from nsynth_research.instruments.features.stats import load_or_compute_stats
    from nsynth_research.instruments.training import read_notes

    cfg = load_config(Path("configs/baseline.yaml"), [f"data.root={root}", *CACHE])
    anon = AnonPeak()
    clock = time.perf_counter()
    notes = {split: read_notes(cfg, split) for split in ("train", "valid")}
    manifest, clock = time.perf_counter() - clock, time.perf_counter()
    data_fingerprint(root, ("train", "valid"))
    fingerprint, clock = time.perf_counter() - clock, time.perf_counter()
    caches = {
        split: ensure_cached(split_notes, cfg.features, cache_dir(root, split, cfg.features,
                             "float16"), dtype="float16", label=f"{split} features")
        for split, split_notes in notes.items()
    }  # fmt: skip
    fill, clock = time.perf_counter() - clock, time.perf_counter()
    load_or_compute_stats(root, notes["train"], cfg.features, cache=caches["train"])
    stats = time.perf_counter() - clock
    count = sum(map(len, notes.values()))
    return {
        "notes": count, "train_notes": len(notes["train"]), "manifest_s": manifest,
        "fingerprint_s": fingerprint, "fill_s": fill, "stats_s": stats,
        "first_pass_notes_per_s": count / (manifest + fingerprint + fill),
        "cache_bytes": disk_bytes([c.directory for c in caches.values()]),
        "peak_rss_mb": peak_rss_mb(), "peak_anon_mb": anon.stop(),
    }  # fmt: skip


def stage_epoch() -> dict[str, Any]:
    env = {"NSYNTH_HASH_CACHE": str(WORK / "hash-cache-archive")}
    return {"load_before": load_average(), **_child("epoch", str(ARCHIVES), env=env),
            "load_after": load_average()}  # fmt: skip


def epoch(root: Path) -> dict[str, Any]:
    """Child: the seed model, two epochs on every train note; the second one timed."""
    import tempfile

    import keras

    from nsynth_research.instruments.config import load_config
    from nsynth_research.instruments.training import prepare_data, train

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_test_begin(self, logs: dict | None = None) -> None:
            self.train_s = time.perf_counter() - self.start

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.wall_s = time.perf_counter() - self.start

    with tempfile.TemporaryDirectory() as store:
        cfg = load_config(Path("configs/baseline.yaml"), [
            f"data.root={root}", *CACHE, "training.epochs=2", f"tracking.store={store}",
            "training.early_stopping_patience=null", "training.subset_epochs=0"])  # fmt: skip
        anon = AnonPeak()
        data = prepare_data(cfg, progress=False)
        timer = Timer()
        train(cfg, data, callbacks=[timer], verbose=0)
    return {"train_notes": len(data.train), "valid_notes": len(data.valid),
            "epoch_train_s": timer.train_s, "epoch_wall_s": timer.wall_s,
            "peak_rss_mb": peak_rss_mb(), "peak_anon_mb": anon.stop()}  # fmt: skip


def stage_study() -> dict[str, Any]:
    from benchmarks.large_report import study_results

    extra = os.environ.get("NSYNTH_LARGE_STUDY", "").split()
    overrides = ["name=large", f"overrides.data.root={ARCHIVES}",
                 f"overrides.tracking.store={WORK / 'mlruns'}",
                 *(f"overrides.{o}" for o in CACHE), *extra]  # fmt: skip
    from nsynth_research.core.space import base_config
    from nsynth_research.core.study_config import load_study_config
    from nsynth_research.instruments.config import InstrumentConfig

    preset = Path("experiments/nsynth.yaml")
    study = load_study_config(preset, overrides)
    cap = base_config(study, InstrumentConfig).data.max_notes_per_instrument
    before, clock = load_average(), time.perf_counter()
    with (WORK / "study.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nsynth_research", "sweep", "--experiment",
             str(preset), *overrides], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "NSYNTH_HASH_CACHE": str(WORK / "hash-cache-archive")},
        )  # fmt: skip
        anon = AnonPeak(proc.pid)
        proc.wait()
    wall, peak_anon = time.perf_counter() - clock, anon.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"the study failed; see {WORK / 'study.log'}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"overrides": overrides, "cap": cap, "n_trials": study.n_trials,
            "preset_trials": load_study_config(preset).n_trials, "wall_s": wall,
            "peak_rss_mb": peak, "peak_anon_mb": peak_anon, "load_before": before,
            "load_after": load_average(),
            **study_results(WORK / "mlruns", "large")}  # fmt: skip


def run() -> dict:
    from benchmarks.large_report import report

    WORK.mkdir(parents=True, exist_ok=True)
    state = json.loads(STATE.read_text()) if STATE.is_file() else {}
    redo = set(filter(None, os.environ.get("NSYNTH_LARGE_REDO", "").split(",")))
    only = set(filter(None, os.environ.get("NSYNTH_LARGE_STAGES", "").split(","))) or None
    for stage in STAGES:
        if (stage in state and stage not in redo) or (only and stage not in only):
            continue
        before = load_average()
        print(f"-- {stage} (load {before:.1f})", flush=True)
        state[stage] = globals()[f"stage_{stage}"]()
        state.setdefault("dates", {})[stage] = time.strftime("%Y-%m-%d %H:%M:%S")
        state.setdefault("loads", {})[stage] = [before, load_average()]
        STATE.write_text(json.dumps(state, indent=2))
    return report(state)


if __name__ == "__main__":
    what = {"first_pass": first_pass, "epoch": epoch}[sys.argv[1]]
    print(json.dumps(what(Path(sys.argv[2]))))
