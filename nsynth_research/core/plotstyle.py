"""Figures drawn in a known style, whatever ran before them.

Optuna's matplotlib plots call `plt.style.use("ggplot")`, which changes the style of the
whole process: a confusion matrix drawn after the study plots got a grey background and
white grid lines through every cell. Every figure of this project is therefore drawn inside
a style context, which sets a known style and restores the previous one on the way out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib.pyplot as plt

#: Matplotlib's own defaults: figures look the same drawn alone or after anything else.
PLAIN = "default"
#: Optuna's plots, in the style they were designed for, contained.
OPTUNA = "ggplot"
#: Saved figures are cropped to what they draw (legends outside the axes included).
SAVE = {"bbox_inches": "tight", "dpi": 110}


@contextmanager
def figure_style(style: str = PLAIN) -> Iterator[None]:
    with plt.style.context(style, after_reset=True):
        yield
