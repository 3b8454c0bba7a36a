"""The climb, step by step: per class dream its target logit, the target's probability and
the strongest rival logit, drawn per family and logged as MLflow metrics.

A raw-logit climb can raise the target while a rival rises faster (the target "wins" on its
own score and loses the classification); only the curves show that, so they are part of
every run. Metric keys are `curve.<family>.<start>_s<seed>.<quantity>`, one step per ascent
step (counted from 1); channel dreams log `curve.<layer>_<channel>.activation`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mlflow.entities import Metric

from nsynth_research.core.plotstyle import figure_style
from nsynth_research.dream.dreams import Dream
from nsynth_research.dream.figures import label_grid, panel_grid
from nsynth_research.instruments.families import FAMILIES

COLOURS = {"noise": "tab:blue", "note": "tab:orange"}
QUANTITIES = ("target_logit", "target_prob", "rival_logit")


def curve_metrics(dreams: Sequence[Dream], timestamp: int) -> list[Metric]:
    """Every recorded curve as MLflow metric points."""
    out: list[Metric] = []
    for d in dreams:
        if d.kind == "class":
            base = f"curve.{FAMILIES[d.target or 0]}.{d.start}_s{d.seed}"
            names = {q: f"{base}.{q}" for q in QUANTITIES}
        elif d.kind == "channel":
            names = {"activation": f"curve.{d.extra['layer']}_{d.extra['channel']}.activation"}
        else:
            continue
        for quantity, key in names.items():
            values = d.curves.get(quantity)
            if values is None:
                continue
            out.extend(Metric(key, float(v), timestamp, step + 1) for step, v in enumerate(values))
    return out


def curves_figure(dreams: Sequence[Dream], quantity: str, title: str) -> plt.Figure | None:
    """One panel per target family: every seed's curve, coloured by start; for logits the
    strongest rival is drawn dashed beside the target."""
    classes = [d for d in dreams if d.kind == "class" and quantity in d.curves]
    families = list(dict.fromkeys(d.target for d in classes))
    if not families:
        return None
    cols = min(4, len(families))
    rows = int(np.ceil(len(families) / cols))
    with figure_style():
        fig, axes, _ = panel_grid(rows, cols, 2.8, 1.8, colorbar=False)
        for ax, family in zip(axes.flat, families, strict=False):
            for d in (d for d in classes if d.target == family):
                steps = np.arange(1, len(d.curves[quantity]) + 1)
                colour = COLOURS.get(d.start, "tab:gray")
                ax.plot(steps, d.curves[quantity], color=colour, lw=1.0)
                if quantity == "target_logit" and "rival_logit" in d.curves:
                    ax.plot(steps, d.curves["rival_logit"], color=colour, lw=0.8, ls="--")
            ax.set_title(FAMILIES[family or 0], fontsize=9)
            ax.tick_params(labelsize=7)
            if quantity == "target_prob":
                ax.set_ylim(-0.02, 1.02)
        label_grid(axes, len(families), "ascent step", quantity.replace("_", " "))
        handles = [plt.Line2D([], [], color=c, label=f"from {s}") for s, c in COLOURS.items()]
        if quantity == "target_logit":
            handles.append(plt.Line2D([], [], color="k", ls="--", label="strongest rival"))
        fig.legend(handles=handles, loc="lower right", fontsize=8)
        fig.suptitle(title, fontsize=10)
    return fig
