"""The generalisation ladder (issue 12): every rung scored in library and across libraries.

The default study trains on Merlin's presets (`data.train_libraries`) and selects on
TimGM6mb presets whose samples no training preset plays. Benchmarks never read the test
split (it is the study's single read), so every rung is scored here on the held-out
validation data, split by library: Merlin's validation presets (in library) and the fold's
transfer notes (TimGM6mb presets sample-disjoint from every training group: cross library),
with 95% bootstrap intervals over instruments. The trained rungs stopped early on the transfer
notes and the champion was selected on them, so their cross-library figures here are
optimistic; the champion's honest figure is its single test read, reported beside the ladder
from its logged evaluation run, not recomputed.

Rungs: chance; a logistic regression on log-mel + MFCC summary statistics (fold train notes);
the seed baseline (trial 0); a reference design (band 3x32, max 3x2, Adam), trained here on
the same fold with the same protocol; the study's champion. Also measured: the
training time of an epoch of the champion's network with and without augmentation (the issue
allows at most 1.5x), interleaved and repeated, medians.
"""

from __future__ import annotations

import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.bench_accuracy import scores, span, summary_features
from benchmarks.common import EXPERIMENT, interleaved, markdown, save, table
from nsynth_research.core.runs import run_config
from nsynth_research.core.selection import EVALUATED_TAG, baseline_trial, select_best
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import RUN_ATTR, load_study
from nsynth_research.core.study import PARENT_ATTR
from nsynth_research.core.study_config import load_study_config
from nsynth_research.core.task import with_objective
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.task import InstrumentTask, run_stats
from nsynth_research.instruments.training import (
    TRANSFER_METRIC,
    predict_split,
    prepare_data,
    train,
)

#: The first default study's champion (issue 12: "band_3x32, max_3x2, Adam").
OLD_CHAMPION = {
    "model.first_kernel": [3, 32],
    "model.first_stride": [1, 16],
    "model.kernel": [3, 3],
    "model.pool": "max",
    "model.pool_size": [3, 2],
    "model.pool_stride": [3, 2],
    "optimizer.name": "adam",
    "optimizer.learning_rate": 0.001,
}
PLAIN = {
    "augment.gain_db": 0.0, "augment.tilt_db": 0.0, "augment.freq_masks": 0,
    "augment.time_masks": 0, "augment.time_shift": 0, "augment.mixup_alpha": 0.0,
}  # fmt: skip
#: The default study's `spectral_mixup` augmentation choice.
AUGMENTED = {
    **PLAIN, "augment.gain_db": 6.0, "augment.tilt_db": 12.0, "augment.freq_masks": 2,
    "augment.time_masks": 1, "augment.time_shift": 8, "augment.mixup_alpha": 0.2,
}  # fmt: skip
HEADERS = ["model", "in-library acc", "instrument CI", "cross-library acc", "instrument CI"]


def _variant(config: InstrumentConfig, changes: dict) -> InstrumentConfig:
    tree = config.to_dict()
    for key, value in changes.items():
        section, name = key.split(".", 1)
        tree[section][name] = value
    return InstrumentConfig.model_validate(tree)


def _logged(client, run_id: str, parts) -> list[np.ndarray]:
    config = run_config(client, run_id, InstrumentConfig)
    model = mlflow.keras.load_model(client.get_run(run_id).data.tags["model_uri"])
    stats = run_stats(run_id)
    return [predict_split(model, notes, stats, config).predictions for notes in parts]


def epoch_ratio(config: InstrumentConfig, data) -> dict:
    """Training seconds of a 2-epoch fit, plain vs augmented, 5 interleaved rounds."""
    # Whole epochs: the study's multi-fidelity start would make both a fraction of one.
    short = {
        "training.epochs": 2,
        "training.early_stopping_patience": None,
        "training.subset_epochs": 0,
    }
    plain = _variant(config, {**short, **PLAIN})
    augmented = _variant(config, {**short, **AUGMENTED})

    def timed(cfg: InstrumentConfig):
        return lambda: train(cfg, data, verbose=0).metrics["train_seconds"]

    rates = interleaved(
        {"plain": timed(plain), "augmented": timed(augmented)},
        work=2.0,
        warmup=0,
        self_timed=True,
    )
    seconds = {name: 1.0 / m.median for name, m in rates.items()}
    return {
        "epoch_seconds": seconds,
        "ratio": seconds["augmented"] / seconds["plain"],
        "rates": {k: v.as_json() for k, v in rates.items()},
    }


def logged_test_read(client, opt) -> dict | None:
    """The champion's test figures from the study's evaluation run, if it was evaluated."""
    parent = opt.user_attrs.get(PARENT_ATTR)
    run_id = parent and client.get_run(parent).data.tags.get(EVALUATED_TAG)
    if not run_id:
        return None
    m = client.get_run(run_id).data.metrics
    out = {"evaluation_run": run_id}
    parts = []
    for name, key in (("in library", "test"), ("cross library", "test_transfer")):
        if f"{key}_accuracy" in m:
            low, high = m[f"{key}_accuracy_ci_low"], m[f"{key}_accuracy_ci_high"]
            out[key] = {"accuracy": m[f"{key}_accuracy"], "instrument_ci": [low, high]}
            parts.append(f"{name} {m[f'{key}_accuracy']:.3f} [{low:.3f}, {high:.3f}]")
    out["line"] = f"{'; '.join(parts)} (evaluation run {run_id})"
    return out


def run() -> dict:
    study = load_study_config(EXPERIMENT)
    task = InstrumentTask()
    base = base_config(study, InstrumentConfig)
    libraries = base.data.train_libraries
    data = prepare_data(base, progress=False)
    inside = list(data.valid)
    cross = [n for notes in data.transfer.values() for n in notes]
    parts = (inside, cross)
    labels = [np.array([n.family for n in p]) for p in parts]
    insts = [[n.instrument_str for n in p] for p in parts]
    rng = np.random.default_rng(0)
    predictions = {"chance (uniform random)": [rng.integers(0, 11, len(y)) for y in labels]}
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    logreg.fit(summary_features(data.train), np.array([n.family for n in data.train]))
    predictions["logistic regression, log-mel + MFCC stats"] = [
        logreg.predict(summary_features(p)) for p in parts
    ]
    opt = load_study(study, base, "maximize")
    client = open_store(base.tracking)
    seed = baseline_trial(opt)
    if seed is not None and seed.user_attrs.get(RUN_ATTR):
        predictions[f"seed baseline (trial {seed.number})"] = _logged(
            client, seed.user_attrs[RUN_ATTR], parts
        )
    old = train(_variant(base, OLD_CHAMPION), data, verbose=0, monitor=TRANSFER_METRIC)
    stats = data.stats
    predictions["reference design (band 3x32, max 3x2, Adam)"] = [
        predict_split(old.model, p, stats, base).predictions for p in parts
    ]
    best = select_best(opt, with_objective(task, base.training.objective).objective)
    run_id = best.user_attrs[RUN_ATTR]
    predictions[f"study champion (trial {best.number}, selected on these notes)"] = _logged(
        client, run_id, parts
    )
    rows = {
        name: [scores(y, p, i) for y, p, i in zip(labels, preds, insts, strict=True)]
        for name, preds in predictions.items()
    }
    printed = [
        [name, a["accuracy"], span(a["accuracy_instrument_ci"]),
         b["accuracy"], span(b["accuracy_instrument_ci"])]
        for name, (a, b) in rows.items()
    ]  # fmt: skip
    print(
        f"trained on {', '.join(libraries)}; validation in library: {len(inside)} notes of "
        f"{len(set(insts[0]))} instruments; cross library (transfer notes): {len(cross)} notes "
        f"of {len(set(insts[1]))} instruments"
    )
    print(table(HEADERS, printed))
    print(markdown(HEADERS, printed))
    test_read = logged_test_read(client, opt)
    if test_read:
        print(f"champion's single test read (logged, not recomputed): {test_read['line']}")
    champion = run_config(client, run_id, InstrumentConfig)
    timing = epoch_ratio(champion, data)
    print(
        f"champion network epoch (training phase, median of 5 interleaved 2-epoch fits): "
        f"plain {timing['epoch_seconds']['plain']:.2f} s, augmented "
        f"{timing['epoch_seconds']['augmented']:.2f} s, ratio {timing['ratio']:.2f}"
    )
    payload = {
        "scored_on": "validation: in-library valid notes and the fold's transfer notes",
        "champion_test_read": test_read,
        "train_libraries": list(libraries),
        "rows": {name: {"in_library": a, "cross_library": b} for name, (a, b) in rows.items()},
        "augmentation_epoch": timing,
    }
    save("generalisation", payload, tables={"ladder": (HEADERS, printed)})
    return payload
