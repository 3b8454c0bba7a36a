"""Melody generation: what each sampling option and calibration does to the statistics.

The melody study's champion (models:/nsynth-melody@champion; run `make sweep
EXPERIMENT=experiments/melody.yaml` first) continues the anacrusis and first bar of every
validation tune its vocabulary covers (up to PRIMERS tunes), SAMPLES times each, for BARS bars,
under each setting: temperature, top-k, nucleus, greedy with and without the repetition guard,
with and without calibrating barline crossings and out-of-key notes to the corpus's rates;
the n-gram baseline the same way. Every set is compared with the real continuations of all
validation tunes (the statistics of `nsynth_research/melody/stats.py`), beside the spread of
sets of as many real excerpts; intervals resample primers (tunes), with their samples. A
second table is the closing-note view: 8 samples from one primer at two temperatures, the
greedy continuation, the n-gram's samples and that tune's real continuation. It never reads
the test split.
"""

from __future__ import annotations

import os

import mlflow
import numpy as np

from benchmarks.common import save, table
from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.runs import run_config
from nsynth_research.core.study_config import champion_uri
from nsynth_research.core.tracking import get_run, open_store
from nsynth_research.melody.calibration import KINDS, Calibration
from nsynth_research.melody.config import MelodyConfig
from nsynth_research.melody.data import melody_splits
from nsynth_research.melody.generate import continuations, make_plan, resolve_model
from nsynth_research.melody.primer import frame
from nsynth_research.melody.record import Request
from nsynth_research.melody.references import (
    best_ngram_order,
    common_metre,
    ngram_model,
    real_continuation,
    real_excerpts,
    tune_primer,
)
from nsynth_research.melody.report import COLUMNS, cell, compare_sets, header
from nsynth_research.melody.report import table as comparison_table
from nsynth_research.melody.sampling import SamplingOptions, continue_batch
from nsynth_research.melody.stats import Melody, Profiles, Spread, real_draws, reference_histograms
from nsynth_research.melody.task import run_vocabulary
from nsynth_research.melody.tokens import event_token

MODEL = os.environ.get("MELODY_MODEL", champion_uri("melody"))
PRIMERS, SAMPLES, BARS, SEED, RESAMPLES = 24, 4, 8, 0, 200
#: (row name, "lstm" or "ngram", options, calibration kinds)
SETTINGS: list[tuple[str, str, SamplingOptions, tuple[str, ...]]] = [
    ("LSTM T=1, uncalibrated", "lstm", SamplingOptions(1.0), ()),
    ("LSTM T=1, metre calibrated", "lstm", SamplingOptions(1.0), ("metre",)),
    ("LSTM T=1, key calibrated", "lstm", SamplingOptions(1.0), ("key",)),
    ("LSTM T=1 (default)", "lstm", SamplingOptions(1.0), KINDS),
    ("LSTM T=0.7", "lstm", SamplingOptions(0.7), KINDS),
    ("LSTM T=1.3", "lstm", SamplingOptions(1.3), KINDS),
    ("LSTM top-k 5", "lstm", SamplingOptions(1.0, top_k=5), KINDS),
    ("LSTM top-p 0.9", "lstm", SamplingOptions(1.0, top_p=0.9), KINDS),
    ("LSTM top-p 0.7", "lstm", SamplingOptions(1.0, top_p=0.7), KINDS),
    ("LSTM greedy, no guard, uncalibrated", "lstm", SamplingOptions(0.0), ()),
    ("LSTM greedy, no guard", "lstm", SamplingOptions(0.0), KINDS),
    ("LSTM greedy, guard 2 (default)", "lstm", SamplingOptions(0.0, no_repeat_ngram=2), KINDS),
    ("LSTM greedy, guard 3", "lstm", SamplingOptions(0.0, no_repeat_ngram=3), KINDS),
    ("LSTM greedy, guard 4", "lstm", SamplingOptions(0.0, no_repeat_ngram=4), KINDS),
    ("LSTM greedy, guard 6", "lstm", SamplingOptions(0.0, no_repeat_ngram=6), KINDS),
    ("n-gram T=1, uncalibrated", "ngram", SamplingOptions(1.0), ()),
    ("n-gram T=1", "ngram", SamplingOptions(1.0), KINDS),
]
#: Statistics given with their interval over primers in the second table.
INTERVALS = (
    "tv_degree",
    "tv_length",
    "out_of_key",
    "across_barline",
    "repeated_bars",
    "longest_run",
)


def primer_interval(profiles: Profiles, per: int, reference: dict, seed: int) -> dict:
    """95% intervals of each statistic over primers resampled with their `per` continuations
    (melodies of primer i are rows i*per .. i*per+per-1 of `profiles`)."""
    rng = np.random.default_rng(seed)
    primers = len(profiles.scalars) // per
    rows = []
    for _ in range(RESAMPLES):
        picked = rng.integers(0, primers, primers)
        rows.append(profiles.summary(reference, (picked[:, None] * per + np.arange(per)).ravel()))
    return {k: Spread.of([r[k] for r in rows]) for k in rows[0]}


def run() -> dict:
    tracking = TrackingConfig()
    client = open_store(tracking)
    run_id, model_uri = resolve_model(client, MODEL)
    config = run_config(client, run_id, MelodyConfig)
    vocab = run_vocabulary(run_id)
    data = melody_splits(config, progress=False)
    net = mlflow.keras.load_model(model_uri)
    length = config.model.sequence_length
    order = best_ngram_order(get_run(client, run_id).data.metrics)
    baseline = ngram_model(data.splits["train"], vocab, order)
    valid = data.splits["valid"]
    real = real_excerpts(valid, BARS)
    reference = reference_histograms(real)
    default_metre = common_metre(data.splits["train"])
    tunes = [
        t
        for t in valid
        if t.metre and t.key and all(event_token(e) in vocab.index for e in tune_primer(t).events)
    ][:PRIMERS]
    framings = [
        frame(tune_primer(t), metre=None, key=None, default_metre=default_metre) for t in tunes
    ]

    def lstm(windows: np.ndarray) -> np.ndarray:
        return np.asarray(net(windows, training=False))

    calibration = Calibration.fit(data.splits["train"])
    results, spreads = {}, {}
    for name, model, options, use in SETTINGS:
        request = Request(bars=BARS, calibrate=use)
        plans = [
            make_plan(tune_primer(t), f, vocab, calibration, request)
            for t, f in zip(tunes, framings, strict=True)
        ]
        per = 1 if options.greedy else SAMPLES
        made = continue_batch(
            lstm if model == "lstm" else baseline.step,
            vocab,
            [p for p in plans for _ in range(per)],
            options,
            sequence_length=length if model == "lstm" else max(length, order),
            rng=np.random.default_rng(SEED),
        )
        melodies = [
            Melody(tuple(m), f.key, f.metre.bar, p.position)
            for i, (p, f) in enumerate(zip(plans, framings, strict=True))
            for m in made[i * per : (i + 1) * per]
        ]
        n = len(melodies)
        if n not in spreads:
            draws = real_draws(real, n, seed=SEED)
            spreads[n] = {k: Spread.of([d[k] for d in draws]) for k in draws[0]}
        profiles = Profiles.of(melodies)
        interval = primer_interval(profiles, per, reference, SEED)
        results[name] = {
            "model": "LSTM" if model == "lstm" else f"{order}-gram",
            "options": options.describe(),
            "calibrate": list(use),
            "n": n,
            "stats": profiles.summary(reference),
            "interval": {k: vars(s) for k, s in interval.items()},
        }
        print(f"{name}: {n} melodies", flush=True)
    closing = closing_view(
        net, length, vocab, data, calibration, tunes[0], default_metre, order, real
    )

    headers = ["setting", "n", *(header(k) for k in COLUMNS)]
    rows = [
        [name, r["n"], *(cell(k, r["stats"][k]) for k in COLUMNS)] for name, r in results.items()
    ]
    for n, spread in sorted(spreads.items()):
        rows.append(
            [
                f"held-out real, sets of {n}: median",
                n,
                *(cell(k, spread[k].median) for k in COLUMNS),
            ]
        )
    iv_headers = ["setting", *(header(k) for k in INTERVALS)]
    iv_rows = [
        [
            name,
            *(
                f"{cell(k, r['stats'][k])} [{cell(k, r['interval'][k]['low'])}, "
                f"{cell(k, r['interval'][k]['high'])}]"
                for k in INTERVALS
            ),
        ]
        for name, r in results.items()
    ]
    for n, spread in sorted(spreads.items()):
        iv_rows.append(
            [
                f"held-out real, sets of {n}",
                *(
                    f"{cell(k, spread[k].median)} [{cell(k, spread[k].low)}, "
                    f"{cell(k, spread[k].high)}]"
                    for k in INTERVALS
                ),
            ]
        )
    print(table(headers, rows))
    print(table(iv_headers, iv_rows))
    print(table(*closing["table"]))
    payload = {
        "model": model_uri,
        "training_run": run_id,
        "primers": len(tunes),
        "samples_per_primer": SAMPLES,
        "bars": BARS,
        "ngram_order": order,
        "reference": f"real continuations of {len(real)} validation tunes",
        "settings": results,
        "real_spread": {n: {k: vars(s) for k, s in sp.items()} for n, sp in spreads.items()},
        "closing": {k: v for k, v in closing.items() if k != "table"},
    }
    path = save(
        "melody",
        payload,
        tables={
            "settings": (headers, rows),
            "intervals": (iv_headers, iv_rows),
            "closing": closing["table"],
        },
    )
    print(f"wrote {path}")
    return payload


def closing_view(net, length, vocab, data, calibration, tune, default_metre, order, real) -> dict:
    """8 samples from one validation primer at T=1 and T=0.7, greedy, n-gram and the real
    continuation, against sets of 8 real excerpts."""
    primer = tune_primer(tune)
    framing = frame(primer, metre=None, key=None, default_metre=default_metre)
    groups: dict[str, list[Melody]] = {}
    for temperature in (1.0, 0.7):
        request = Request(bars=BARS, samples=8, options=SamplingOptions(temperature), seed=SEED)
        plan = make_plan(primer, framing, vocab, calibration, request)
        made = continuations(net, length, vocab, data, plan, framing, request, order)
        for g in made:
            if temperature != 1.0 and g.group == "LSTM greedy":
                continue  # greedy does not depend on the temperature
            label = g.group if g.group == "LSTM greedy" else f"{g.group}, T={temperature:g}"
            groups.setdefault(label, []).append(g.melody)
    found = real_continuation(tune, primer, BARS)
    if found is not None:
        groups["real continuation"] = [found]
    comparison = compare_sets(groups, real, seed=SEED)
    return {
        "primer": primer.notes_text(),
        "tune": tune.id,
        "metre": framing.metre.ratio,
        "key": framing.key.name,
        "comparison": comparison.as_json(),
        "table": comparison_table(comparison),
    }


if __name__ == "__main__":
    run()
