"""parity: does the fast float32 feature path train as well as the float64 default?

The unit tests bound the float32 features against the librosa reference on normalised
features; what a researcher cares about is whether a model trained on them scores the same.
So this trains the same configs, same seeds and same notes twice, once per
`features.fft_precision`, and compares best validation accuracy (in-library `val_accuracy`
on the default corpus's valid split, never test), for a linear-STFT and a log-mel front-end
of the default study's search space. A difference is "within noise" when zero lies within
two standard errors of the mean paired (same seed) difference; the seed-to-seed spread of
either precision is printed beside it for scale.

Sizing (~5-7 min on 2 cores): 2 front-ends x 2 precisions x 5 seeds x EPOCHS epochs of
NOTES train notes, plus each front-end's features once per precision.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.common import EXPERIMENT, markdown, save, small_study, table
from nsynth_research.core.space import base_config, trial_config
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.training import prepare_data, train

SEEDS = (0, 1, 2, 3, 4)
EPOCHS, NOTES = 8, 384
#: Trial parameters of the default study's space: its strided STFT filterbank and its
#: 128-band log-mel 2-D net, both with the Adam choice, no augmentation.
FRONT_ENDS = {
    "linear STFT (band_stft)": {"network": "band_stft"},
    "log-mel 128 (mel128_2d)": {"network": "mel128_2d"},
}
COMMON = {"optimizer": "adam_1e-3", "augment": "none", "model.head": "gap"}
PRECISIONS = ("float64", "float32")


def run() -> dict:
    study_cfg = small_study(NOTES, EPOCHS, "objective=val_accuracy")
    base = base_config(study_cfg, InstrumentConfig)
    data = prepare_data(base, progress=False)
    start = time.perf_counter()
    scores: dict[str, dict[str, list[float]]] = {}
    for front, params in FRONT_ENDS.items():
        scores[front] = {p: [] for p in PRECISIONS}
        for seed in SEEDS:
            for precision in PRECISIONS:
                cfg = trial_config(base, study_cfg.search_space, {**COMMON, **params})
                tree = cfg.to_dict()
                tree["seed"] = seed
                tree["features"]["fft_precision"] = precision
                cfg = InstrumentConfig.model_validate(tree)
                result = train(cfg, data, verbose=0)
                scores[front][precision].append(result.objective)
                print(
                    f"  {front} {precision} seed {seed}: "
                    f"{result.objective:.3f} "
                    f"({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
    headers = [
        "front-end",
        "float64 val acc (mean)",
        "float64 sd",
        "float32 val acc (mean)",
        "float32 sd",
        "paired diff (mean)",
        "diff range",
        "2 SE",
        "within noise",
    ]
    rows = []
    for front, by in scores.items():
        diffs = [b - a for a, b in zip(by["float64"], by["float32"], strict=True)]
        two_se = 2 * statistics.stdev(diffs) / len(diffs) ** 0.5
        rows.append(
            [
                front,
                statistics.mean(by["float64"]),
                statistics.stdev(by["float64"]),
                statistics.mean(by["float32"]),
                statistics.stdev(by["float32"]),
                statistics.mean(diffs),
                f"{min(diffs):+.3f}..{max(diffs):+.3f}",
                two_se,
                "yes" if abs(statistics.mean(diffs)) <= two_se else "no",
            ]
        )
    print(table(headers, rows))
    print(markdown(headers, rows))
    save(
        "parity",
        {
            "experiment": str(EXPERIMENT),
            "seeds": list(SEEDS),
            "epochs": EPOCHS,
            "notes_per_split": NOTES,
            "monitor": "val_accuracy",
            "params": {front: {**COMMON, **p} for front, p in FRONT_ENDS.items()},
            "seconds": time.perf_counter() - start,
            "scores": scores,
            "rows": [dict(zip(headers, r, strict=True)) for r in rows],
        },
        tables={"precision": (headers, rows)},
    )
    return {"runs": len(SEEDS) * len(PRECISIONS) * len(FRONT_ENDS)}
