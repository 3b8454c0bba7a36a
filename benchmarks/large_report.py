"""The large run's report (benchmarks/bench_large.py): the study read back from its store, the
measured table, and what the figures come to at NSynth's size.

Scaling is linear in notes at the measured per-note costs, on 2 cores as loaded as they were
here: every pass streams (memory stays flat), and each phase touches each note a fixed number
of times. The study's cost on real NSynth scales its measured phases by the notes each one
reads: the search by the subsample it trains and the valid split it scores, the final fit by
the whole train + valid split, the test read by the test split.
"""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, save, table

#: NSynth's published splits, and its train instruments (1,006 less the 53 of valid/test).
NSYNTH = {"train": 289_205, "valid": 12_678, "test": 4_096}
NSYNTH_TRAIN_INSTRUMENTS = 953
GB = 1e9


def study_results(store: Path, name: str) -> dict[str, Any]:
    """Trials, the final fit and the test read of study `name`, as its runs logged them."""
    from nsynth_research.core.config import TrackingConfig
    from nsynth_research.core.tracking import open_store

    client = open_store(TrackingConfig(store=store))
    exp = client.get_experiment_by_name(f"study-{name}")
    runs = client.search_runs([exp.experiment_id], max_results=1000)

    def seconds(run: Any) -> float:
        return ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000

    def brief(run: Any) -> dict[str, Any]:
        tags, metrics = run.data.tags, run.data.metrics
        return {
            "run_id": run.info.run_id, "name": tags.get("mlflow.runName"),
            "state": tags.get("state"), "seconds": seconds(run),
            "n_train": int(tags.get("n_train", 0)), "n_valid": int(tags.get("n_valid", 0)),
            "best_val_accuracy": metrics.get("best_val_accuracy", metrics.get("val_accuracy")),
            "epochs_run": metrics.get("epochs_run") or float(tags.get("pruned_at_epoch", 0)),
            "train_seconds": metrics.get("train_seconds"),
        }  # fmt: skip

    trials = sorted((r for r in runs if "trial_number" in r.data.tags),
                    key=lambda r: int(r.data.tags["trial_number"]))  # fmt: skip
    fits = [r for r in runs if r.data.tags.get("role") == "final_fit"]
    reads = [r for r in runs if r.data.tags.get("role") == "evaluation"
             and r.data.tags.get("state") == "FINISHED"]  # fmt: skip
    out: dict[str, Any] = {"trials": [brief(r) for r in trials]}
    if fits:
        fit = brief(fits[0])
        logged = fits[0].data.metrics
        curve = "epoch/val_accuracy" if "epoch/val_accuracy" in logged else "val_accuracy"
        stamps = [m.timestamp for m in client.get_metric_history(fit["run_id"], curve)]
        fit["epoch_wall_s"] = [(b - a) / 1000 for a, b in pairwise(stamps)]
        # From the last trial's end to the fit's start: the fit's data (its front-end's
        # features for every train note, unless a trial already cached them).
        ended = max((r.info.end_time or 0) for r in trials)
        fit["prepare_s"] = max(0.0, (fits[0].info.start_time - ended) / 1000)
        out["final_fit"] = fit
    if reads:
        read = reads[0]
        out["test_read"] = {
            "run_id": read.info.run_id, "seconds": seconds(read),
            "scored_run_id": read.data.tags.get("evaluated_run_id"),
            "n_test": read.data.metrics.get("n_test"),
            "description": read.data.tags.get("mlflow.note.content", ""),
            **{k: v for k, v in read.data.metrics.items() if k.startswith("test_accuracy")},
        }  # fmt: skip
    return out


def _gpu() -> dict[str, Any] | None:
    """The seed network on one GPU from benchmarks/results/gpu.json, if a device run exists (a
    CPU dry run does not count): its fastest steps with batches fed from the host, as this
    pipeline feeds them, and the rate that machine reads float16 cache rows cold."""
    path = RESULTS / "gpu.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("dry_run"):
        return None

    def rows(key: str) -> list[dict[str, Any]]:
        found = data.get("tables", {}).get(key, {})
        return [dict(zip(found.get("headers", []), r, strict=False)) for r in found.get("rows", [])]

    steps = [r for r in rows("steps") if r.get("network") == "seed" and r.get("data") == "host"]
    reads = [
        r
        for r in rows("input")
        if r.get("network") == "seed"
        and str(r.get("note file", "")).startswith("float16")
        and "cold" in str(r.get("read"))
    ]
    if not steps or not reads:
        return None
    step = max(steps, key=lambda r: r["examples/s"])
    return {"machine": data.get("machine", "?"), "date": data.get("date", "?"), "step": step,
            "read": reads[0], "rate": min(step["examples/s"], reads[0]["notes/s"])}  # fmt: skip


def report(state: dict[str, Any]) -> dict[str, Any]:
    render, fp, ep = state.get("render", {}), state.get("first_pass", {}), state.get("epoch", {})
    study, read = state.get("study", {}), state.get("read", {})
    rows: list[list[Any]] = []
    if render:
        n = render["notes"]
        rows.append(
            [
                "notes (train / valid / test)",
                f"{n['train']} / {n['valid']} / {n['test']}",
                f"size {render['size']}, {sum(render['instruments'].values())} presets",
            ]
        )
        if render.get("rendered"):
            rows.append(["render s", render["seconds"], f"{render['rendered']} notes rendered"])
        rows.append(["WAV GB", render["wav_bytes"] / GB, "3 split folders"])  # fmt: skip
    if "pack" in state:
        packed = {k: v for k, v in state["pack"].items() if isinstance(v, dict)}
        rows.append(["pack s", sum(p["seconds"] for p in packed.values()), "gzip -6, 3 archives"])
        rows.append(["archives GB", sum(p["archive_bytes"] for p in packed.values()) / GB, ""])
    for name, m in read.get("notes_per_second", {}).items():
        rows.append(
            [
                f"read notes/s, {name}",
                m["median"],
                f"first {read['notes']} train notes, range {m['low']:.0f}-{m['high']:.0f}",
            ]
        )
    fills = state.get("fill_paths", {})
    for name, m in fills.get("notes_per_second", {}).items():
        rows.append(
            [
                f"features notes/s, {name}",
                m["median"],
                f"first {fills['notes']} train notes, range {m['low']:.0f}-{m['high']:.0f}",
            ]
        )
    for layout, r in fp.items():
        rows.append(
            [
                f"first pass notes/s, from {layout}",
                r["first_pass_notes_per_s"],
                f"{r['notes']} train+valid notes: manifest {r['manifest_s']:.0f} s, "
                f"fingerprint {r['fingerprint_s']:.0f} s, features+cache "
                f"{r['fill_s']:.0f} s; load {r['load_before']:.1f}->{r['load_after']:.1f}",
            ]
        )
    if "archive" in fp:
        a = fp["archive"]
        rows.append(["cache GB", a["cache_bytes"] / GB, f"float16 STFT, {a['notes']} notes"])
        rows.append(["stats s", a["stats_s"], f"{a['train_notes']} train notes, from the cache"])
    if ep:
        rows.append(
            [
                "epoch s",
                ep["epoch_train_s"],
                f"seed model, 2nd epoch, {ep['train_notes']}"
                f" train notes (with validation: {ep['epoch_wall_s']:.0f} s); load "
                f"{ep['load_before']:.1f}->{ep['load_after']:.1f}",
            ]
        )
    for what, r in (
        ("first pass, archive", fp.get("archive")),
        ("epoch", ep or None),
        ("study", study or None),
    ):
        if r:
            anon = r.get("peak_anon_mb")
            rows.append([f"peak RSS MB, {what}", r["peak_rss_mb"],
                         "with memory-mapped cache pages" + (
                             f"; heap (RssAnon) {anon:.0f} MB" if anon else "")])  # fmt: skip
    for stage, (before, after) in state.get("loads", {}).items():
        rows.append(
            [
                f"load, {stage}",
                f"{before:.1f} -> {after:.1f}",
                "1-min load average on 2 cores, before -> after the stage",
            ]
        )
    headers = ["quantity", "measured", "on"]
    tables = {"run": (headers, rows)}
    projection = _projection(fp, ep, study)
    if projection:
        tables["projection"] = (["quantity", "measured", "at NSynth size", "basis"], projection)
    if study:
        n_test = render.get("notes", {}).get("test", "")
        headers = ["run", "notes trained (read)", "val (test) accuracy", "epochs", "s"]
        tables["study"] = (headers, _study(study, n_test))
    for key, (h, r) in tables.items():
        print(f"\n{key}\n{table(h, r)}")
    cost = _cost(fp, study)
    if cost:
        tables["cost"] = (["nsynth.yaml on NSynth", "2 CPU cores, h", "one GPU, h", "basis"], cost)
    summary = _summary(state, projection, cost)
    if cost:
        print(f"\ncost\n{table(*tables['cost'])}")
    save("large", {"summary": summary, "state": state, "nsynth": NSYNTH, "gpu": _gpu()},
         tables=tables)  # fmt: skip
    return {"stages": sorted(state)}


def _projection(fp: dict, ep: dict, study: dict) -> list[list[Any]]:
    rows: list[list[Any]] = []
    total = NSYNTH["train"] + NSYNTH["valid"]
    if "archive" in fp:
        a = fp["archive"]
        first = total / a["first_pass_notes_per_s"]
        rows.append(
            [
                "first pass s (archive)",
                a["notes"] / a["first_pass_notes_per_s"],
                first,
                f"{total} train+valid notes at {a['first_pass_notes_per_s']:.0f} notes/s",
            ]
        )
        rows.append(
            [
                "cache GB (float16 STFT)",
                a["cache_bytes"] / GB,
                a["cache_bytes"] / a["notes"] * total / GB,
                "bytes per note x notes",
            ]
        )
        rows.append(["stats s", a["stats_s"], a["stats_s"] / a["train_notes"] * NSYNTH["train"],
                     "per train note"])  # fmt: skip
    if ep:
        per = ep["epoch_train_s"] / ep["train_notes"]
        rows.append(
            [
                "seed epoch s (2 cores)",
                ep["epoch_train_s"],
                per * NSYNTH["train"],
                f"{1000 * per:.2f} ms a train note",
            ]
        )
        gpu = _gpu()
        if gpu:
            step, cold = gpu["step"], gpu["read"]
            rows.append(
                [
                    "seed epoch s (one GPU)",
                    "",
                    NSYNTH["train"] / gpu["rate"],
                    f"min of {step['examples/s']:.0f} steps ex/s (batch {step['batch']}, "
                    f"{step['precision']}, host data) and {cold['notes/s']:.0f} notes/s "
                    f"cold float16 cache reads; {gpu['machine']}, gpu.json",
                ]
            )
    fit, trials = study.get("final_fit"), study.get("trials", [])
    if fit and trials and study.get("cap"):
        searched = sum(t["seconds"] for t in trials)
        notes = max(t["n_train"] for t in trials) + max(t["n_valid"] for t in trials)
        real = NSYNTH_TRAIN_INSTRUMENTS * study["cap"] + NSYNTH["valid"]
        scale = study["preset_trials"] / len(trials) * real / notes
        rows.append(
            [
                "search s (trials)",
                searched,
                searched * scale,
                f"{len(trials)} -> {study['preset_trials']} trials; {notes} -> {real} "
                f"notes a trial epoch ({study['cap']} x {NSYNTH_TRAIN_INSTRUMENTS} "
                "instruments + valid)",
            ]
        )
        fit_notes = fit["n_train"] + fit["n_valid"]
        rows.append(
            [
                "final fit s",
                fit["seconds"],
                fit["seconds"] * total / fit_notes,
                f"{fit_notes} -> {total} train+valid notes, {fit['epochs_run']:.0f} epochs",
            ]
        )
    return rows


def _study(study: dict, n_test: Any) -> list[list[Any]]:
    """Each trial and the final fit (train notes, best validation accuracy), then the test
    read (test notes, test accuracy) and the study's wall time."""
    rows = [[t["name"], t["n_train"], t["best_val_accuracy"], t["epochs_run"], t["seconds"]]
            for t in study.get("trials", [])]  # fmt: skip
    fit = study.get("final_fit")
    if fit:
        rows.append([fit["name"], fit["n_train"], fit["best_val_accuracy"], fit["epochs_run"],
                     fit["seconds"]])  # fmt: skip
    read = study.get("test_read")
    if read:
        scored = "final fit" if fit and read["scored_run_id"] == fit["run_id"] else "a trial"
        rows.append([f"test read (scored the {scored})", n_test,
                     read.get("test_accuracy"), "", read["seconds"]])  # fmt: skip
    rows.append(["study, wall", "", "", "", study["wall_s"]])
    return rows


def _cost(fp: dict, study: dict) -> list[list[Any]]:
    """experiments/nsynth.yaml on real NSynth, phase by phase: on 2 cores from the measured
    per-note costs, on one GPU from gpu.json's seed-network rate (epochs as the large study
    ran them; the first pass's features were not measured on the GPU machine)."""
    fit, trials, a = study.get("final_fit"), study.get("trials", []), fp.get("archive")
    if not (fit and trials and a and study.get("cap")):
        return []
    total = NSYNTH["train"] + NSYNTH["valid"]
    search_notes = NSYNTH_TRAIN_INSTRUMENTS * study["cap"] + NSYNTH["valid"]
    notes = max(t["n_train"] for t in trials) + max(t["n_valid"] for t in trials)
    scale = study["preset_trials"] / len(trials)
    per_fit_note = total / (fit["n_train"] + fit["n_valid"])
    cpu = {
        "first pass": total / a["first_pass_notes_per_s"],
        "search": sum(t["seconds"] for t in trials) * scale * search_notes / notes,
        "final fit's first pass": fit.get("prepare_s", 0.0) * per_fit_note,
        "final fit": fit["seconds"] * per_fit_note,
    }
    gpu, rate = {}, (_gpu() or {}).get("rate")
    if rate:
        epochs = sum(t["epochs_run"] or 0 for t in trials) * scale
        gpu = {"search": epochs * search_notes / rate}
        gpu["final fit"] = fit["epochs_run"] * total / rate
    basis = {
        "first pass": f"{a['first_pass_notes_per_s']:.0f} notes/s from the archives, "
        "features on the CPU either way",
        "search": f"{study['preset_trials']} trials on {study['cap']} notes x "
        f"{NSYNTH_TRAIN_INSTRUMENTS} instruments + valid",
        "final fit's first pass": "the selected front-end's features for every note the "
        "search did not cache",
        "final fit": f"{total} train+valid notes, {fit['epochs_run']:.0f} epochs",
    }
    rows = [[k, v / 3600, gpu[k] / 3600 if k in gpu else "not measured", basis[k]]
            for k, v in cpu.items()]  # fmt: skip
    rows.append(["total", sum(cpu.values()) / 3600,
                 sum(gpu.values()) / 3600 if gpu else "not measured",
                 "GPU: search + final fit epochs only, seed network's rate (the slowest "
                 "row reads)" if gpu else ""])  # fmt: skip
    return rows


def _summary(state: dict, projection: list, cost: list) -> dict[str, Any]:
    """Single figures the docs quote in prose (`<!-- value: large/summary.<key> -->`)."""
    out: dict[str, Any] = {}
    render, read, fp = state.get("render", {}), state.get("read", {}), state.get("first_pass", {})
    if render:
        out.update(planned=_planned(render["size"]), planned_full=_planned("full"))
        out.update(notes=render["total_notes"], train_notes=render["notes"]["train"],
                   dropped_clipped=render["dropped_clipped"],
                   dropped_silent=render["dropped_silent"])  # fmt: skip
    rates = {k: m["median"] for k, m in read.get("notes_per_second", {}).items()}
    if len(rates) == 2:
        archive, folder = (rates[k] for k in sorted(rates))
        out["read_archive_vs_folder"] = archive / folder
    if "archive" in fp and "folder" in fp:
        out["first_pass_archive_vs_folder"] = (
            fp["archive"]["first_pass_notes_per_s"] / fp["folder"]["first_pass_notes_per_s"]
        )

    def key(name: str) -> str:
        return re.sub(r"\W+", "_", name).strip("_")

    for row in projection:
        out[f"nsynth_{key(row[0])}"] = row[2]
    for row in cost:
        out[f"cost_{key(row[0])}_cpu_h"], out[f"cost_{key(row[0])}_gpu_h"] = row[1], row[2]
    return out


def _planned(size: str) -> int:
    """Notes the corpus config plans at `size`, before silent and clipped ones are dropped."""
    from nsynth_research.instruments.config import load_corpus_config
    from nsynth_research.instruments.corpus.plan import note_plan, plan_instruments

    config = load_corpus_config(Path("configs/corpus.yaml"), [f"size={size}"])
    return sum(len(note_plan(inst, size)) for inst in plan_instruments(config))
