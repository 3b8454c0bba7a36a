"""dream: which class objective reaches its target, how many Griffin-Lim iterations a dream
needs, and how long `make dream` takes on the default champion.

- objectives: the class dreams of one run (every family, `seeds` noise starts and as many
  real start notes, the run's default settings) once per objective, on the same starts and
  seeds; per family how many reached the target (the model's top family for the dreamed
  input) and how many are still heard as it after Griffin-Lim. The default objective is the
  one that reaches its target in more than half the dreams of the most families.
- griffin_lim: 16, 32 and 64 iterations on the same 24 inputs (12 class dreams and 12 real
  start notes), timed in interleaved rounds, each with the share of WAVs classified as their
  input was (the round trip) and the mean absolute difference between the WAV's features and
  the input's: fewer iterations are kept only where neither moves.
- wall: `make dream` itself (a child process, imports included) on the champion, with its
  phases' wall and CPU seconds, against the 2-minute target on 2 cores. It logs a dream run
  into the repo store like any `make dream`.

The model is `models:/nsynth-default@champion` of ./mlruns (NSYNTH_BENCH_DREAM_MODEL names
another). Sizing: ~4 x the class-dream phase of a run, plus one run (~5-8 min on 2 cores).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np

from benchmarks.common import interleaved, markdown, ratio_rows, save, table
from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.study_config import champion_uri
from nsynth_research.core.tracking import open_store
from nsynth_research.dream.audio import dream_audio, normalised_features, to_full_scale
from nsynth_research.dream.compute import Prepared, class_batch, prepare
from nsynth_research.dream.config import OBJECTIVES, DreamConfig
from nsynth_research.dream.flags import diagnose
from nsynth_research.dream.objectives import probabilities
from nsynth_research.dream.report import Decoder, hear
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.families import FAMILIES
from nsynth_research.instruments.predict import load_predictor, resolve_run

MODEL = os.environ.get("NSYNTH_BENCH_DREAM_MODEL", champion_uri("default"))
TRACKING = TrackingConfig()
ITERATIONS = (16, 32, 64)
TARGET_SECONDS = 120.0


def objectives(prep: Prepared) -> tuple[dict, list[str], list[list]]:
    """Per objective and family: dreams that reached the target, and heard as it."""
    results: dict[str, dict[str, dict[str, int]]] = {}
    for kind in OBJECTIVES:
        prep.config = prep.config.model_copy(update={"objective": kind})
        start = time.perf_counter()
        dreams = class_batch(prep, np.random.default_rng(prep.config.seed))
        diagnose(dreams, prep.bounds, prep.config.silence_db)
        classes = [d for d in dreams if d.kind == "class"]
        with tempfile.TemporaryDirectory() as tmp:
            hear(classes, _decoder(prep), Path(tmp))
        per_family: dict[str, dict[str, int]] = {}
        for d in classes:
            row = per_family.setdefault(FAMILIES[d.target or 0], {"reached": 0, "heard": 0, "n": 0})
            row["n"] += 1
            row["reached"] += int(bool(d.reached))
            row["heard"] += int(d.extra.get("heard_as") == FAMILIES[d.target or 0])
        results[kind] = per_family
        print(f"  {kind}: {time.perf_counter() - start:.0f} s", flush=True)
    headers = ["family", *(f"{k} reached / heard" for k in OBJECTIVES)]
    rows = [
        [family, *(_cell(results[k][family]) for k in OBJECTIVES)]
        for family in results[OBJECTIVES[0]]
    ]
    rows.append(
        ["families reached in > half", *(str(_families_won(results[k])) for k in OBJECTIVES)]
    )
    rows.append(["all dreams reached", *(_total(results[k], "reached") for k in OBJECTIVES)])
    rows.append(["all dreams heard", *(_total(results[k], "heard") for k in OBJECTIVES)])
    return results, headers, rows


def _cell(r: dict[str, int]) -> str:
    return f"{r['reached']}/{r['n']} / {r['heard']}/{r['n']}"


def _families_won(per_family: dict[str, dict[str, int]]) -> int:
    """Families whose dreams reach the target more often than not."""
    return sum(2 * r["reached"] > r["n"] for r in per_family.values())


def _total(per_family: dict[str, dict[str, int]], key: str) -> str:
    return f"{sum(r[key] for r in per_family.values())}/{sum(r['n'] for r in per_family.values())}"


def best_objective(results: dict) -> str:
    """Most families reached in more than half their dreams; ties by dreams reached, then
    by dreams heard."""

    def rank(kind: str) -> tuple[int, int, int]:
        r = results[kind]
        return (
            _families_won(r),
            sum(v["reached"] for v in r.values()),
            sum(v["heard"] for v in r.values()),
        )

    return max(OBJECTIVES, key=rank)


def _decoder(prep: Prepared, iters: int | None = None) -> Decoder:
    p = prep.predictor
    return Decoder(
        p.model,
        p.stats,
        p.config.features,
        iters or prep.config.griffin_lim_iters,
        prep.config.seed,
    )


def griffin_lim(prep: Prepared) -> tuple[dict, list[str], list[list]]:
    dreams = class_batch(prep, np.random.default_rng(prep.config.seed))
    picked = [d for d in dreams if d.kind == "class"][::5][:12] + [
        d for d in dreams if d.kind == "start"
    ][:12]
    x = np.stack([d.x for d in picked])
    top = np.argmax(probabilities(prep.predictor.model, x), axis=1)
    p, cfg = prep.predictor, prep.predictor.config.features
    contenders = {
        f"{n} iterations": (lambda n=n: dream_audio(x, p.stats, cfg, n_iter=n, seed=0))
        for n in ITERATIONS
    }
    timed = interleaved(contenders, work=len(picked))
    quality = {}
    for n in ITERATIONS:
        audio = np.stack(
            [to_full_scale(a)[0] for a in dream_audio(x, p.stats, cfg, n_iter=n, seed=0)]
        )
        again = normalised_features(audio, p.stats, cfg)
        heard = np.argmax(probabilities(p.model, again), axis=1)
        error = np.mean(np.abs(again - x) * (p.stats.std + cfg.norm_eps))
        quality[n] = {
            "round_trip_same": float(np.mean(heard == top)),
            "feature_error": float(error),
        }
    headers, rows = ratio_rows(timed, f"{ITERATIONS[-1]} iterations", "inputs per s")
    headers += ["round trip same", "mean abs feature error"]
    for row, n in zip(rows, ITERATIONS, strict=True):
        row += [quality[n]["round_trip_same"], quality[n]["feature_error"]]
    payload = {
        "inputs": len(picked),
        "timing": {k: v.as_json() for k, v in timed.items()},
        "quality": quality,
    }
    return payload, headers, rows


def wall() -> tuple[dict, list[str], list[list]]:
    """`make dream` on the champion, as a user runs it, with the machine's load beside it
    (the target is for 2 idle cores; the CPU seconds are the command's own share)."""
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nsynth_research", "dream", "--model", MODEL],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"make dream failed:\n{done.stderr[-3000:]}")
    run_id = re.search(r"dream run (\w+) of model run", done.stdout).group(1)  # type: ignore[union-attr]
    summary = mlflow.artifacts.load_dict(f"runs:/{run_id}/summary.json")
    headers = ["phase", "wall s", "CPU s"]
    rows = [[k, v, summary["cpu_seconds"][k]] for k, v in summary["timings"].items()]
    rows.append(["make dream (whole command)", seconds, cpu])
    payload = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "run_id": run_id,
        "target_seconds": TARGET_SECONDS,
        "within_target": seconds <= TARGET_SECONDS,
        "phases": summary["timings"],
        "cpu_phases": summary["cpu_seconds"],
    }
    return payload, headers, rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run() -> dict:
    open_store(TRACKING)
    model_run = resolve_run(open_store(TRACKING), MODEL)
    predictor = load_predictor(model_run, InstrumentConfig(tracking=TRACKING))
    prep = prepare(predictor, DreamConfig())
    print(f"model {MODEL} (run {model_run}), {len(prep.pool.notes)} validation notes", flush=True)
    results, oh, orows = objectives(prep)
    best = best_objective(results)
    print(table(oh, orows))
    print(f"default objective by measurement: {best} (configured: {DreamConfig().objective})")
    prep.config = DreamConfig()
    gl, gh, grows = griffin_lim(prep)
    print(table(gh, grows))
    timed, wh, wrows = wall()
    print(table(wh, wrows))
    print(
        f"make dream: {timed['seconds']:.0f} s wall, {timed['cpu_seconds']:.0f} s CPU "
        f"(target {TARGET_SECONDS:.0f} s on 2 idle cores; 1-min load average "
        f"{timed['load_average_1min']['before']:.1f} before)"
    )
    payload = {
        "model": MODEL,
        "model_run_id": model_run,
        "objectives": results,
        "best_objective": best,
        "configured_objective": DreamConfig().objective,
        "griffin_lim": gl,
        "wall": timed,
    }
    save(
        "dream",
        payload,
        tables={"objectives": (oh, orows), "griffin_lim": (gh, grows), "wall": (wh, wrows)},
    )
    print(markdown(oh, orows))
    return payload
