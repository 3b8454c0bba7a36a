"""What a generate run asks for and what it records: the request, the finished generation, and
how both appear as MLflow params, metrics and description, on the page and on the console."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nsynth_research.core.errors import UserError
from nsynth_research.melody.calibration import KINDS
from nsynth_research.melody.outputs import Generated
from nsynth_research.melody.primer import Framing, Primer
from nsynth_research.melody.report import COLUMNS, PERCENT, Comparison
from nsynth_research.melody.sampling import SamplingOptions, check_request

EXPERIMENT = "melody-generate"
EXPERIMENT_NOTE = (
    "Melody generations (`make generate`): each run continues one primer with a melody model "
    "several times (sampled) and once greedily, beside the n-gram baseline's samples, and "
    "measures them against real continuations of the validation tunes; its files (MIDI, "
    "audio, piano rolls, statistics, generate.html) are its artifacts."
)
#: Greedy decoding never repeats a figure of this many events (0: off); docs/melody.md
#: has the measurements behind the choice.
GREEDY_GUARD = 2


@dataclass(frozen=True)
class Request:
    """What to generate: how much, how many, how chosen, in which metre and key."""

    bars: int = 8
    samples: int = 8
    options: SamplingOptions = field(default_factory=SamplingOptions)
    greedy_guard: int = GREEDY_GUARD
    metre: str | None = None
    key: str | None = None
    #: What the sampler matches to the corpus's rates: barline crossings per position in
    #: the bar (`metre`), notes outside the key signature (`key`).
    calibrate: tuple[str, ...] = KINDS
    seed: int = 0

    @property
    def greedy(self) -> SamplingOptions:
        return SamplingOptions(0.0, no_repeat_ngram=self.greedy_guard)

    def check(self) -> None:
        check_request(self.bars, self.options)
        check_request(self.bars, self.greedy)
        if self.samples < 1:
            raise UserError(f"SAMPLES={self.samples}: generate at least one sample")
        if set(self.calibrate) - set(KINDS):
            raise UserError(
                f"CALIBRATE={','.join(self.calibrate)}: choose from {', '.join(KINDS)} or none"
            )


@dataclass
class Generation:
    """A finished generate run: what was primed, made, measured and written."""

    run_id: str
    model_uri: str
    training_run: str
    primer: Primer
    framing: Framing
    request: Request
    melodies: list[Generated]
    comparison: Comparison
    ngram_order: int
    n_reference: int
    folder: Path
    files: list[Path] = field(default_factory=list)


def params(gen: Generation) -> dict[str, object]:
    r, f, o = gen.request, gen.framing, gen.request.options
    return {
        "model": gen.model_uri,
        "training_run": gen.training_run,
        "primer": gen.primer.notes_text()[:500],
        "primer_source": gen.primer.source[:500],
        "primer_events": len(gen.primer.events),
        "metre": f.metre.ratio,
        "metre_from": f.metre_from,
        "key": f.key.name,
        "key_from": f.key_from,
        "pickup_quarters": str(f.pickup),
        "bars": r.bars,
        "samples": r.samples,
        "temperature": o.temperature,
        "top_k": o.top_k,
        "top_p": o.top_p,
        "greedy_repeat_guard": r.greedy_guard,
        "calibrate": ",".join(r.calibrate) or "none",
        "ngram_order": gen.ngram_order,
        "seed": r.seed,
        "reference": f"validation split, {gen.n_reference} tunes",
    }


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def metrics(comparison: Comparison) -> dict[str, float]:
    """`<set>.<statistic>` for each set, and `real_median.<statistic>` for real sets."""
    out = {}
    for group, stats in comparison.stats.items():
        out.update({f"{slug(group)}.{k}": v for k, v in stats.items() if np.isfinite(v)})
    for n, found in comparison.real.items():
        out.update({f"real_sets_of_{n}_median.{k}": s.median for k, s in found.spread.items()})
    return out


def facts(gen: Generation) -> list[tuple[str, str]]:
    f, r = gen.framing, gen.request
    return [
        ("model", gen.model_uri),
        ("primer", f"{gen.primer.notes_text()} ({gen.primer.source})"),
        ("metre", f"{f.metre.ratio} (from {f.metre_from})"),
        ("key", f"{f.key.name} (from {f.key_from})"),
        ("anacrusis", f"{f.pickup} quarters" if f.pickup else "none"),
        ("samples", f"{r.samples} x {r.bars} bars, {r.options.describe()}"),
        ("greedy", r.greedy.describe()),
        ("calibrated to corpus rates", ", ".join(r.calibrate) or "none"),
        ("baseline", f"{gen.ngram_order}-gram (lowest validation perplexity), same options"),
        ("reference", f"real continuations of {gen.n_reference} validation tunes"),
        ("run", f"{gen.run_id} in MLflow experiment {EXPERIMENT}; files in {gen.folder}"),
    ]


def note(gen: Generation) -> str:
    r = gen.request
    return (
        f"{r.samples} samples ({r.options.describe()}) and a greedy continuation of {r.bars} "
        f"bars in {gen.framing.metre.ratio}, {gen.framing.key.name}, after {gen.primer.source}: "
        f"`{gen.primer.notes_text(12)}`, by {gen.model_uri}; {gen.ngram_order}-gram samples as "
        f"the baseline. Statistics against real continuations of {gen.n_reference} validation "
        f"tunes. Files: {gen.folder} (page: generate.html)."
    )


#: Statistics the console summary shows.
SHOWN = ("tv_degree", "tv_interval", "tv_length", "out_of_key", "across_barline",
         "repeated_bars", "longest_run")  # fmt: skip


def summary(gen: Generation) -> str:
    """Console lines: the framing, each set's headline statistics and flags beside real sets
    of the same size, and where the files are."""
    f, comparison = gen.framing, gen.comparison
    lines = [
        f"primer ({gen.primer.source}): {gen.primer.notes_text()}",
        f"metre {f.metre.ratio} (from {f.metre_from}), key {f.key.name} (from {f.key_from}), "
        f"anacrusis {f.pickup} quarters",
    ]

    def cell(k: str, v: float) -> str:
        return f"{100 * v:.1f}%" if k in PERCENT else f"{v:.3g}"

    for group, stats in comparison.stats.items():
        n, flags = comparison.sizes[group], len(comparison.outside(group))
        shown = ", ".join(f"{COLUMNS[k]} {cell(k, stats[k])}" for k in SHOWN)
        lines.append(f"{group} ({n}; {flags} flags): {shown}")
    for n, found in comparison.real.items():
        s, fl = found.spread, found.flags
        shown = ", ".join(
            f"{COLUMNS[k]} {cell(k, s[k].median)} [{cell(k, s[k].low)}-{cell(k, s[k].high)}]"
            for k in SHOWN
        )
        lines.append(
            f"real sets of {n}, median [2.5-97.5%] ({fl.median:g} [{fl.low:g}-{fl.high:g}] "
            f"flags): {shown}"
        )
    lines.append(
        f"wrote {len(gen.files)} files to {gen.folder}; page {gen.folder / 'generate.html'}"
    )
    lines.append(f"logged run {gen.run_id} in MLflow experiment {EXPERIMENT}")
    return "\n".join(lines)
