"""A study's figures: static PNGs drawn to be read at the size MLflow previews them, and
Optuna's interactive plotly figures in one HTML page beside them.

Optuna's own matplotlib plots are experimental and were drawn for notebooks: white lines on
grey, category ticks printed over each other, a slice strip thousands of pixels wide,
pruned trials left out of the history, "Trial0" legends. These are drawn here instead, in
the project's plain style: every axis names what it shows, pruned trials are drawn as
pruned, and the importances say how many trials they rest on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from nsynth_research.core.task import Objective
from nsynth_research.core.trials import best_trial, complete_trials, trial_value

#: Below this many complete trials per searched dimension, importances are a rough ranking.
TRIALS_PER_DIMENSION = 2
COLOURS = plt.get_cmap("viridis")
BEST = "#d62728"
ORANGE = "#ff7f0e"
PRUNED: dict[str, Any] = {
    "s": 40,
    "zorder": 3,
    "facecolors": "none",
    "edgecolors": ORANGE,
    "linewidths": 1.5,
}
NOTE: dict[str, Any] = {"textcoords": "offset points", "fontsize": 7}
#: Tick labels stay readable where lines cross them.
LABEL_BOX: dict[str, Any] = {
    "boxstyle": "round,pad=0.15",
    "fc": "white",
    "ec": "none",
    "alpha": 0.85,
}


def _short(value: Any) -> str:
    """A category as a tick label: lists without their spaces ([64,64,128])."""
    return str(list(value) if isinstance(value, tuple) else value).replace(", ", ",")


def _steps(trial: FrozenTrial) -> tuple[list[int], list[float]]:
    """A trial's reports by 1-based epoch (studies whose trials reported from step 0 too)."""
    shift = 1 if 0 in trial.intermediate_values else 0
    steps = sorted(trial.intermediate_values)
    return [s + shift for s in steps], [trial.intermediate_values[s] for s in steps]


def history_figure(opt: optuna.Study, objective: Objective) -> Figure:
    """Every trial's score by trial number: complete ones, pruned ones at the epoch they
    stopped, failed ones on the floor, and the best-so-far line."""
    fig, ax = plt.subplots(figsize=(9, 4.8))
    done = complete_trials(opt)
    pruned = [t for t in opt.trials if t.state == TrialState.PRUNED and t.intermediate_values]
    last = {t.number: (_steps(t)[0][-1], _steps(t)[1][-1]) for t in pruned}
    ax.scatter([t.number for t in done], [trial_value(t) for t in done], s=40, zorder=3,
               label=f"complete ({len(done)})")  # fmt: skip
    ax.scatter(list(last), [v for _, v in last.values()], label=f"pruned, at its last epoch "
               f"({len(pruned)})", **PRUNED)  # fmt: skip
    for number, (epoch, value) in last.items():
        ax.annotate(f"ep {epoch}", (number, value), xytext=(4, -10), color=ORANGE, **NOTE)
    failed = [t.number for t in opt.trials if t.state == TrialState.FAIL]
    if failed:
        ax.plot(failed, [0] * len(failed), "x", color="grey", transform=ax.get_xaxis_transform(),
                clip_on=False, label=f"failed ({len(failed)})")  # fmt: skip
    if done:
        pick = max if objective.direction == "maximize" else min
        xs = [t.number for t in sorted(done, key=lambda t: t.number)]
        ys = list(itertools.accumulate((trial_value(opt.trials[n]) for n in xs), pick))
        ax.step([*xs, len(opt.trials) - 1], [*ys, ys[-1]], where="post", color=BEST,
                label="best so far")  # fmt: skip
    for t in opt.trials:
        if t.user_attrs.get("baseline") and t.value is not None:
            ax.annotate("seed baseline", (t.number, t.value), xytext=(6, 6), **NOTE)
    ax.set_xlabel("trial")
    ax.set_ylabel(objective.label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(
        f"Study {opt.study_name}: {objective.label} of each trial, on the validation split"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def curves_figure(opt: optuna.Study, objective: Objective) -> Figure:
    """The objective each trial reported per epoch: what the pruner compared."""
    fig, ax = plt.subplots(figsize=(9, 4.8))
    best = best_trial(opt, objective)
    done = complete_trials(opt)
    values = [trial_value(t) for t in done]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    for t in opt.trials:
        if not t.intermediate_values:
            continue
        xs, ys = _steps(t)
        if t.state == TrialState.PRUNED:
            ax.plot(xs, ys, "--", color="grey", alpha=0.8, lw=1)
            ax.plot(xs[-1:], ys[-1:], "x", color="grey")
        elif best is not None and t.number == best.number:
            ax.plot(xs, ys, color=BEST, lw=2.5, zorder=4)
        else:
            share = (trial_value(t) - lo) / (hi - lo) if t.value is not None and hi > lo else 0.5
            ax.plot(xs, ys, color=COLOURS(share), lw=1.2, alpha=0.9)
    handles = [
        Line2D([], [], color=BEST, lw=2.5, label=f"best (trial {best.number})" if best else "best"),
        Line2D([], [], color=COLOURS(0.5), label="complete (colour: final score)"),
        Line2D([], [], color="grey", ls="--", marker="x", label="pruned (stopped at the x)"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_xlabel("epoch")
    ax.set_ylabel(objective.label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Study {opt.study_name}: {objective.label} per epoch (validation split)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _axis(trials: Sequence[FrozenTrial], name: str) -> tuple[Callable[[Any], float], list]:
    """Where a value sits on its axis (0..1) and the ticks (position, label) to draw."""
    dist = next(t.distributions[name] for t in trials if name in t.distributions)
    if isinstance(dist, CategoricalDistribution):
        choices = list(dist.choices)
        span = max(len(choices) - 1, 1)
        where = {_short(c): i / span if len(choices) > 1 else 0.5 for i, c in enumerate(choices)}
        return (lambda v: where[_short(v)]), [(p, c) for c, p in where.items()]
    if not isinstance(dist, FloatDistribution | IntDistribution):
        raise TypeError(f"{name}: unexpected distribution {dist!r}")
    low, high = float(dist.low), float(dist.high)
    log = bool(getattr(dist, "log", False))
    f = (lambda v: math.log(v)) if log else float
    width = (f(high) - f(low)) or 1.0
    ticks = [low, high] if log else list(np.linspace(low, high, 3))
    return (lambda v: (f(v) - f(low)) / width), [
        ((f(v) - f(low)) / width, f"{v:.3g}") for v in ticks
    ]


def parallel_figure(opt: optuna.Study, objective: Objective) -> Figure:
    """One vertical axis a searched choice, the objective last; a line a complete trial,
    coloured by its score, the best drawn on top in red."""
    done = complete_trials(opt)
    names = sorted({k for t in done for k in t.params})
    fig, ax = plt.subplots(figsize=(max(8.0, 1.15 * (len(names) + 1)), 5.2))
    axes = [_axis(done, n) for n in names]
    values = [trial_value(t) for t in done]
    lo, hi = min(values), max(values)
    score = (lambda v: (v - lo) / (hi - lo)) if hi > lo else (lambda v: 0.5)
    best = best_trial(opt, objective)
    for t in sorted(done, key=lambda t: t.number == (best.number if best else -1)):
        ys = [
            place(t.params[n]) if n in t.params else np.nan
            for n, (place, _) in zip(names, axes, strict=True)
        ]
        is_best = best is not None and t.number == best.number
        style: dict[str, Any] = (
            {"color": BEST, "lw": 2.8, "zorder": 3}
            if is_best
            else {"color": COLOURS(score(trial_value(t))), "lw": 1.3, "alpha": 0.8, "zorder": 2}
        )
        ax.plot(range(len(names) + 1), [*ys, score(trial_value(t))], **style)
    value_ticks = [(score(v), f"{v:.3f}") for v in sorted({lo, (lo + hi) / 2, hi})]
    for i, (_, ticks) in enumerate([*axes, (None, value_ticks)]):
        ax.axvline(i, color="black", lw=0.8, zorder=1)
        for pos, label in ticks:
            ax.text(
                i + 0.04, pos, label, fontsize=8, va="center", ha="left", zorder=5, bbox=LABEL_BOX
            )
    ax.set_xticks(
        range(len(names) + 1),
        [*names, f"{objective.label}\n(validation)"],
        rotation=20,
        ha="right",
        fontsize=9,
    )
    ax.set_yticks([])
    bar = fig.colorbar(
        plt.cm.ScalarMappable(plt.Normalize(lo, hi), COLOURS), ax=ax, pad=0.01, fraction=0.025
    )
    bar.set_label(objective.label)
    ax.set_xlim(-0.1, len(names) + 0.7)
    ax.set_ylim(-0.06, 1.06)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(
        f"Study {opt.study_name}: choices of the {len(done)} complete trials "
        f"(red: best, trial {best.number if best else '-'}; colour: {objective.label})"
    )
    fig.tight_layout()
    return fig


def slice_figure(opt: optuna.Study, objective: Objective) -> Figure:
    """The objective against each searched choice, one small panel each, in rows of three;
    points coloured by trial number (early to late), pruned trials hollow."""
    trials = [t for t in opt.trials if t.params and (t.value is not None)]
    names = sorted({k for t in trials for k in t.params})
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axs = plt.subplots(
        rows, cols, figsize=(3.5 * cols, 2.6 * rows + 0.6), sharey=True, squeeze=False
    )
    last = max(t.number for t in trials) or 1
    for ax, name in zip(axs.flat, names, strict=False):
        place, ticks = _axis(trials, name)
        shown = [t for t in trials if name in t.params]
        xs = [place(t.params[name]) for t in shown]
        colours = [COLOURS(t.number / last) for t in shown]
        hollow = [t.state == TrialState.PRUNED for t in shown]
        for x, t, c, h in zip(xs, shown, colours, hollow, strict=True):
            ax.scatter(x, t.value, s=30, facecolors="none" if h else c, edgecolors=c, zorder=3)
        ax.set_xticks(
            [p for p, _ in ticks],
            [label for _, label in ticks],
            rotation=25,
            ha="right",
            fontsize=8,
        )
        ax.set_xlim(-0.1, 1.1)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axs.flat)[len(names) :]:
        ax.set_visible(False)
    for row in axs:
        row[0].set_ylabel(objective.label, fontsize=9)
    fig.suptitle(
        f"Study {opt.study_name}: {objective.label} (validation) by each choice; colour: trial "
        "number, early (dark) to late (yellow); hollow: pruned, at its last epoch",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def importance_figure(opt: optuna.Study, objective: Objective) -> Figure:
    """fANOVA importances of the searched choices, saying how many trials they rest on."""
    done = complete_trials(opt)
    scores = optuna.importance.get_param_importances(
        opt, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    names = list(scores)[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.6))
    ax.barh(names, [scores[n] for n in names], color="#1f77b4")
    for i, n in enumerate(names):
        ax.text(scores[n], i, f" {scores[n]:.2f}", va="center", fontsize=8)
    ax.set_xlabel(f"share of the variance of {objective.label} (fANOVA)")
    rough = len(done) < TRIALS_PER_DIMENSION * max(len(names), 1)
    caveat = f" ({'few trials: a rough ranking' if rough else 'complete trials only'})"
    ax.set_title(
        f"Study {opt.study_name}: importance of each choice, from {len(done)} complete "
        f"trials{caveat}",
        fontsize=10,
    )
    ax.tick_params(axis="y", labelsize=9)
    fig.tight_layout()
    return fig


def static_figures(opt: optuna.Study, objective: Objective) -> dict[str, Callable[[], Figure]]:
    """Artifact name -> drawing, for the figures this study has enough trials for."""
    done = complete_trials(opt)
    out: dict[str, Callable[[], Figure]] = {
        "optimization_history": lambda: history_figure(opt, objective),
        "intermediate_values": lambda: curves_figure(opt, objective),
    }
    if done and any(t.params for t in done):
        out["parallel_coordinate"] = lambda: parallel_figure(opt, objective)
        out["slice"] = lambda: slice_figure(opt, objective)
    varied = [
        k
        for k in {k for t in done for k in t.params}
        if len({str(t.params.get(k)) for t in done}) > 1
    ]
    if len(done) >= 2 and varied:
        out["param_importances"] = lambda: importance_figure(opt, objective)
    return out
