"""What the page and the figures show, arranged: per family its dreams from noise, its dreams
beside their start notes, and the real notes that most activate it; per channel its dream and
its real notes; the DeepDream before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nsynth_research.dream.audio import denormalise
from nsynth_research.dream.compute import Prepared
from nsynth_research.dream.dreams import Dream
from nsynth_research.dream.figures import Panel, Scale, thumbnail
from nsynth_research.dream.flags import hide_picture, is_failure
from nsynth_research.dream.page import Cell, Row, Section
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.families import FAMILIES, FAMILY_INDEX


@dataclass
class Example:
    """A real validation note ranked for a class or channel."""

    index: int
    score: float
    feats: np.ndarray
    audio: np.ndarray


def examples(prep: Prepared) -> dict[str, list[Example]]:
    """Top real notes per family name and per channel key (`channels/<layer>_<c>`)."""
    k, kind, pool = prep.config.examples, prep.config.objective, prep.pool
    ranked: dict[str, list[tuple[int, float]]] = {
        name: pool.top_for_class(FAMILY_INDEX[name], kind, k) for name in prep.families
    }
    for column, (layer, c) in enumerate(prep.channels):
        ranked[f"channels/{layer}_{c}"] = pool.top_for_channel(column, k)
    wanted = sorted({i for top in ranked.values() for i, _ in top})
    feats = dict(zip(wanted, prep.note_inputs(wanted), strict=True)) if wanted else {}
    stats, cfg = prep.predictor.stats, prep.predictor.config.features
    audio = {i: load_audio(pool.notes[i].path) for i in wanted}
    return {
        key: [Example(i, s, denormalise(feats[i], stats, cfg), audio[i]) for i, s in top]
        for key, top in ranked.items()
    }


def features_of(dreams: Sequence[Dream], prep: Prepared) -> dict[str, np.ndarray]:
    stats, cfg = prep.predictor.stats, prep.predictor.config.features
    return {d.key: denormalise(d.x, stats, cfg) for d in dreams}


def _probs_line(d: Dream) -> str:
    if d.target is None or d.probs_before is None or d.probs_after is None:
        return ""
    name = FAMILIES[d.target]
    if d.kind in ("start", "deepdream-source"):
        top = int(np.argmax(d.probs_after))
        p_top, p_own = d.probs_after[top], d.probs_after[d.target]
        return f"model hears {FAMILIES[top]} (p {p_top:.2f}); p({name}) {p_own:.2f}"
    before, after = d.probs_before[d.target], d.probs_after[d.target]
    return f"p({name}) {before:.2f} &rarr; {after:.2f} (model input)"


def dream_cell(d: Dream, feats: np.ndarray, audio: np.ndarray | None, scale: Scale) -> Cell:
    lines = [line for line in [_probs_line(d)] if line]
    if d.kind == "channel" and "score" in d.curves:
        lines.append(
            f"mean activation {d.curves['score'][0]:.3g} &rarr; {d.curves['score'][-1]:.3g}"
        )
    hidden = hide_picture(d)
    if "heard_as" in d.extra and not hidden:
        heard = f"WAV heard as <b>{d.extra['heard_as']}</b>"
        if d.target is not None and "heard_p" in d.extra:
            heard += f" (p({FAMILIES[d.target]}) {d.extra['heard_p']:.2f})"
        lines.append(heard)
    if d.extra.get("no_audio"):
        lines.append(f"no audio: {d.extra['no_audio']}")
    if "peak" in d.extra:
        gain = f", turned down {-d.extra['gain_db']:.1f} dB" if d.extra["gain_db"] < 0 else ""
        lines.append(f"WAV peak {d.extra['peak']:.2f}{gain}; level {d.extra['level_db']:.0f} dB")
    return Cell(
        title=d.title,
        thumb=None if hidden else thumbnail(feats, scale),
        audio=audio,
        lines=lines,
        flags=[f for f in d.flags if is_failure(f)],
        remarks=[f for f in d.flags if not is_failure(f)],
        real=d.kind in ("start", "deepdream-source"),
        hidden_because="; ".join(d.flags) if hidden else "",
        key=d.key,
    )


def example_cell(ex: Example, prep: Prepared, scale: Scale, what: str) -> Cell:
    note = prep.pool.notes[ex.index]
    probs = prep.pool.probabilities[ex.index]
    top = int(np.argmax(probs))
    return Cell(
        title=note.note_str,
        thumb=thumbnail(ex.feats, scale),
        audio=ex.audio,
        lines=[
            f"true {FAMILIES[note.family]}; model hears {FAMILIES[top]} (p {probs[top]:.2f})",
            f"{what} {ex.score:.3g}",
        ],
        real=True,
        key=note.note_str,
    )


def sections(
    dreams: Sequence[Dream],
    prep: Prepared,
    feats: dict[str, np.ndarray],
    audio: dict[str, np.ndarray],
    tops: dict[str, list[Example]],
    scale: Scale,
) -> list[Section]:
    by_key = {d.key: d for d in dreams}
    cell = {d.key: dream_cell(d, feats[d.key], audio.get(d.key), scale) for d in dreams}
    classes = Section(
        f"Class dreams ({prep.config.objective} objective)",
        "Each family climbed from faint noise and from real notes of other families "
        "(start note &rarr; dream), beside the validation notes that score highest for it.",
    )
    for name in prep.families:
        mine = [d for d in dreams if d.kind == "class" and d.target == FAMILY_INDEX[name]]
        reached = sum(bool(d.reached) for d in mine)
        classes.rows.append(Row(f"{name}: reached {reached} of {len(mine)}", [], heading=True))
        classes.rows.append(Row("from noise", [cell[d.key] for d in mine if d.start == "noise"]))
        classes.rows.append(
            Row(
                "from real notes",
                [
                    (cell[d.start_key], cell[d.key])
                    for d in mine
                    if d.start == "note" and d.start_key in by_key
                ],
            )
        )
        what = f"{prep.config.objective} of {name}"
        classes.rows.append(
            Row(
                f"validation notes most {name}",
                [example_cell(e, prep, scale, what) for e in tops[name]],
            )
        )
    deep = Section("DeepDream of a note", f"{prep.layer}'s activations amplified in a real note.")
    pair = [d for d in dreams if d.kind in ("deepdream-source", "deepdream")]
    if len(pair) == 2:
        deep.rows.append(Row("before \u2192 after", [(cell[pair[0].key], cell[pair[1].key])]))
    channels = Section(
        "Channels",
        "Inputs (from faint noise) that maximise one channel's mean activation after its "
        "block's activation, beside the validation notes that activate it most.",
    )
    for d in (d for d in dreams if d.kind == "channel"):
        tops_of = tops.get(d.key, [])
        row: list[Cell | tuple[Cell, Cell]] = [
            cell[d.key],
            *(example_cell(e, prep, scale, "mean activation") for e in tops_of),
        ]
        channels.rows.append(Row(d.title, row))
    return [classes, deep, channels]


def class_panels(dreams: Sequence[Dream], feats: dict[str, np.ndarray], start: str) -> list[Panel]:
    out = []
    for d in dreams:
        if d.kind != "class" or d.start != start or d.target is None:
            continue
        p = d.probs_after[d.target] if d.probs_after is not None else float("nan")
        flag = next((f for f in d.flags if is_failure(f)), "")
        out.append(Panel(feats[d.key], f"{FAMILIES[d.target]} s{d.seed}: p {p:.2f}", flag))
    return out
