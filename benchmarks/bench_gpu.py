"""gpu: training-step throughput of the study's champion network and of the seed network on the
accelerator Keras sees, at batch 32/128/256, float32 against mixed precision.

Every network is `build_model` from its resolved config with `training.precision` applied as
the training path applies it (per layer, float32 logits), compiled with its configured
optimizer, and fitted on random batches held in memory, so the figures are the step's ceiling:
- host: numpy batches handed to `fit` each step (the copy to the device included, as when a
  split is held in RAM);
- device: the same batches already on the accelerator (JAX backend only: there Keras passes
  device arrays through untouched; TensorFlow's generator path would copy them back).
Within one (network, batch) group every (precision, data) contender runs in interleaved rounds.

The input side is measured where it can be without the project's tf.data pipeline: raw reads of
files laid out as the feature cache stores them (one file a note), from the page cache and cold
(evicted with posix_fadvise), with numpy on the machine's CPUs.

Without an accelerator this is a dry run (batch 32, 2 steps a call) written to
`gpu-dryrun.json`, so it never replaces measured accelerator figures in `gpu.json`. On a
machine without TensorFlow (KERAS_BACKEND=jax) the networks are read from an earlier results
file (`--networks-from`): resolving the study's champion needs Optuna and MLflow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import EXPERIMENT, markdown, save, table
from benchmarks.gpu_measure import environment, measure_group, read_rates

BATCHES = (32, 128, 256)
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
ROUNDS = 5
INPUT_NOTES = 1024
FULL_NSYNTH_TRAIN = 289_205
#: The default study's last champion (docs/results.md: trial 6), used when the store holds no
#: registered champion.
CHAMPION_PARAMS = {
    "network": "mel64_2d",
    "model.head": "flatten",
    "model.filters": "[64, 64, 128, 128]",
    "model.dense": "[256, 256]",
    "optimizer": "adamw_1e-3",
    "training.label_smoothing": 0.0,
    "augment": "none",
    "model.dropout": 0.3,
}


def resolve_networks() -> dict[str, dict[str, Any]]:
    """name -> {source, config}: the study's champion (its logged config when the store has
    `models:/nsynth-<study>@champion`, else the recorded champion point of its search space)
    and the seed network (the study's base config)."""
    from nsynth_research.core.space import base_config, trial_config
    from nsynth_research.core.study_config import champion_name, load_study_config
    from nsynth_research.instruments.config import InstrumentConfig, load_config

    study = load_study_config(EXPERIMENT)
    base = base_config(study, InstrumentConfig)
    seed = load_config(study.base_config)
    logged = _store_champion(champion_name(study.name), base)
    if logged is not None:
        champion, source = logged
    else:
        champion = trial_config(base, study.search_space, CHAMPION_PARAMS)
        source = f"{EXPERIMENT} search space at the recorded champion point {CHAMPION_PARAMS}"
    return {
        "champion": {"source": source, "config": champion.to_dict()},
        "seed": {"source": str(study.base_config), "config": seed.to_dict()},
    }


def _store_champion(name: str, base: Any) -> tuple[Any, str] | None:
    """The registered champion's logged config, or None when the store has none."""
    if not (Path(base.tracking.store) / "mlflow.db").is_file():
        return None
    from mlflow.exceptions import MlflowException

    from nsynth_research.core.runs import run_config
    from nsynth_research.core.tracking import open_store

    client = open_store(base.tracking)
    try:
        run_id = client.get_model_version_by_alias(name, "champion").run_id
    except MlflowException:
        return None
    return run_config(client, run_id, type(base)), f"models:/{name}@champion (run {run_id})"


def _rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    """Steps table rows; `x float32` compares with float32 on the same network, batch, data."""
    ref = {
        (r["network"], r["batch"], r["data"]): r["steps_per_second"]["median"]
        for r in results
        if r["precision"] == "float32"
    }
    return [
        [
            r["network"],
            r["batch"],
            r["precision"],
            r["data"],
            r["steps_per_second"]["median"],
            f"{r['steps_per_second']['low']:.4g}-{r['steps_per_second']['high']:.4g}",
            r["examples_per_second"],
            r["steps_per_second"]["median"] / ref[(r["network"], r["batch"], r["data"])],
        ]
        for r in results
    ]


def _full_nsynth(results: list[dict[str, Any]], reads: dict[str, Any]) -> list[list[Any]]:
    """Per network, its fastest host-data setting over one epoch of NSynth train, beside the
    time to read that epoch's cached features cold (float32 and float16 layouts)."""
    rows = []
    for net in dict.fromkeys(r["network"] for r in results):
        host = [r for r in results if r["network"] == net and r["data"] == "host"]
        best = max(host, key=lambda r: r["examples_per_second"])
        minutes = FULL_NSYNTH_TRAIN / best["examples_per_second"] / 60
        cold = [
            FULL_NSYNTH_TRAIN / reads[net][dt]["cold, all cores"]["notes_per_second"]["median"] / 60
            if net in reads
            else "not measured"
            for dt in ("float32", "float16")
        ]
        setting = f"batch {best['batch']}, {best['precision']}"
        rows.append([net, setting, best["examples_per_second"], minutes, minutes * 20 / 60, *cold])
    return rows


def run(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv or [])
    from nsynth_research.core.errors import UserError
    from nsynth_research.instruments.config import InstrumentConfig

    env = environment()
    dry = not env["accelerator"]
    if args.networks_from:
        source = Path(args.networks_from)
        if not source.is_file():
            raise UserError(f"--networks-from {source}: no such results file")
        networks = json.loads(source.read_text())["networks"]
    else:
        networks = resolve_networks()
    batches = tuple(args.batches or ((32,) if dry else BATCHES))
    precisions = tuple(args.precisions or PRECISIONS)
    steps = args.steps or (2 if dry else None)
    notes = args.input_notes or (64 if dry else INPUT_NOTES)
    name = "gpu-dryrun" if dry else "gpu"
    devices = ", ".join(g["name"] for g in env["gpu"]) or ", ".join(env["devices"])
    versions = f"Keras {env['keras']} on {env['backend']} {env.get('jax', env.get('tensorflow'))}"
    payload: dict[str, Any] = {
        "machine": f"{devices}; {env['cpus']} CPU cores ({env['cpu']}); {versions}",
        "dry_run": dry,
        "environment": env,
        "networks": networks,
        "networks_from": args.networks_from,
        "rounds": args.rounds,
        "data": "random batches in memory, cycled; host: numpy fed each step; device: on the "
        "accelerator before timing (JAX backend only)",
        "not_measured": [
            "the project's tf.data input pipeline (feature-cache reads, normalisation, "
            "augmentation) on the accelerator machine: it needs TensorFlow"
            + ("" if env["backend"] == "tensorflow" else ", which is not installed there"),
            "feature computation (STFT, log-mel) and first-pass cache filling",
            "validation passes and callbacks of the training loop",
        ],
        "results": [],
        "input_reads": {},
    }
    if env["backend"] != "jax":
        payload["not_measured"].append("device-resident batches (measured on the JAX backend)")
    tables: dict[str, Any] = {}
    for net, spec in networks.items():
        config = InstrumentConfig.model_validate(spec["config"])
        for batch in batches:
            used, rates = measure_group(
                config, batch, precisions, steps, args.rounds, device_data=env["backend"] == "jax"
            )
            for label, m in rates.items():
                precision, data = label.split(" / ")
                per_step = {k: v / batch for k, v in m.as_json().items() if k != "samples"}
                payload["results"].append(
                    {
                        "network": net,
                        "batch": batch,
                        "precision": precision,
                        "data": data,
                        "steps_per_call": used,
                        "steps_per_second": per_step,
                        "examples_per_second": m.median,
                        "examples_per_second_samples": m.samples,
                    }
                )
            print(f"  {net} batch {batch}: {used} steps a call", flush=True)
            tables["steps"] = (STEP_HEADERS, _rows(payload["results"]))
            save(name, {**payload, "complete": False}, tables=tables)
        payload["input_reads"][net] = read_rates(config, notes, args.rounds)
        payload["input_notes"] = notes
    tables["input"] = (
        INPUT_HEADERS,
        [
            [net, f"{dt} {spec['bytes_per_note'] // 1024} KiB", label, spec["threads"]]
            + [spec["notes_per_second"][k] for k in ("median", "low", "high")]
            + [spec["mb_per_second"]]
            for net, by_dtype in payload["input_reads"].items()
            for dt, reads in by_dtype.items()
            for label, spec in reads.items()
        ],
    )
    tables["full_nsynth"] = (FULL_HEADERS, _full_nsynth(payload["results"], payload["input_reads"]))
    for key, (headers, rows) in tables.items():
        print(f"\n{key}\n{table(headers, rows)}\n\n{markdown(headers, rows)}")
    path = save(name, {**payload, "complete": True}, tables=tables)
    print(f"wrote {path}")
    return {"path": str(path), "results": payload["results"]}


STEP_HEADERS = [
    "network",
    "batch",
    "precision",
    "data",
    "steps/s",
    "range",
    "examples/s",
    "x float32",
]
INPUT_HEADERS = ["network", "note file", "read", "threads", "notes/s", "low", "high", "MB/s"]
FULL_HEADERS = [
    "network",
    "fastest (host data)",
    "examples/s",
    "step-bound min / epoch",
    "20 epochs, step-bound (h)",
    "cold read min / epoch (float32)",
    "cold read min / epoch (float16)",
]


def _parser() -> argparse.ArgumentParser:
    def ints(text: str) -> list[int]:
        return [int(v) for v in text.split(",")]

    def precisions(text: str) -> list[str]:
        unknown = set(text.split(",")) - set(PRECISIONS)
        if unknown:
            raise argparse.ArgumentTypeError(f"{sorted(unknown)}: choose from {PRECISIONS}")
        return text.split(",")

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_gpu", description=__doc__)
    p.add_argument("--networks-from", help="results JSON whose `networks` to measure")
    p.add_argument("--batches", type=ints, help="comma-separated batch sizes")
    p.add_argument("--precisions", type=precisions, help="e.g. float32,mixed_bfloat16")
    p.add_argument("--steps", type=int, help="steps a timed call (default: sized by a probe)")
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--input-notes", type=int, help="files a read pass reads")
    return p


if __name__ == "__main__":
    from nsynth_research.core.errors import UserError

    try:
        run(sys.argv[1:])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
