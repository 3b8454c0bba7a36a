"""Building the embedded default corpus ("nsynth-gm") on disk: plan, render, write.

The build is idempotent and crash-safe: WAVs appear only complete (written atomically),
examples.json is written last, `render.json` records the settings, a rerun with the same
settings does nothing (or resumes an interrupted render), and a rerun with other settings
into the same root is refused rather than mixing two corpora. A lock file serialises
concurrent renders of one root (e.g. parallel sweep workers).
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import AbstractContextManager
from dataclasses import asdict
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from tqdm.auto import tqdm

from nsynth_research.core.errors import DataError
from nsynth_research.core.files import (
    TEMP_SUFFIX,
    atomic_save,
    atomic_write_text,
    exclusive,
    file_sha256,
    remove_stale_temporaries,
)
from nsynth_research.instruments.config import SAMPLE_RATE, CorpusConfig
from nsynth_research.instruments.corpus.plan import (
    ELECTRONIC_PROGRAMS,
    PITCH_RANGES,
    SIZES,
    SYNTHETIC_PROGRAMS,
    Instrument,
    note_plan,
    plan_instruments,
    soundfonts,
)
from nsynth_research.instruments.corpus.render import (
    CALIBRATION_QUANTILE,
    CALIBRATION_STRIDE,
    HIGHPASS_HZ,
    HOLD_SECONDS,
    RELEASE_SECONDS,
    RENDER_RATE,
    RENDER_VERSION,
    SILENT_PEAK,
    TARGET_PEAK,
    Renderer,
    library_gains,
)
from nsynth_research.instruments.corpus.summary import (
    SAMPLES_NAME,
    CorpusSummary,
    assert_instrument_disjoint,
    read_examples,
    summarize,
)
from nsynth_research.instruments.data.notes import SOURCES, SPLITS, format_listing, split_dir
from nsynth_research.instruments.families import FAMILIES

log = logging.getLogger(__name__)


LOCK_NAME = ".render.lock"
MARKER_NAME = "render.json"


def _settings(config: CorpusConfig, fonts: list[Path]) -> dict[str, Any]:
    """Everything that decides the corpus's content, as it reads back from render.json.

    SoundFonts are identified by name and content, not path, so a moved file or a
    re-created virtualenv does not invalidate a corpus.
    """
    tree = config.model_dump(mode="json")
    tree.pop("root")
    tree["soundfonts"] = [
        {"name": p.name, "bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in fonts
    ]
    settings = {
        "render_version": RENDER_VERSION,
        "renderer": f"tinysoundfont {metadata.version('tinysoundfont')}, soxr {soxr.__version__}",
        "config": tree,
        "size": size_settings(config.size),
        "pitch_ranges": PITCH_RANGES,
        "sources": {
            "electronic": sorted(ELECTRONIC_PROGRAMS),
            "synthetic": sorted(SYNTHETIC_PROGRAMS),
        },
        "render": {
            "rate": RENDER_RATE,
            "hold_seconds": HOLD_SECONDS,
            "release_seconds": RELEASE_SECONDS,
            "calibration": [CALIBRATION_STRIDE, CALIBRATION_QUANTILE, TARGET_PEAK],
            "silent_peak": SILENT_PEAK,
            "highpass_hz": HIGHPASS_HZ,
        },
    }
    return json.loads(json.dumps(settings))


def size_settings(size: str) -> dict[str, Any]:
    """The size preset as render.json records it; `keys` only where set, so corpora rendered
    before sizes had it keep their settings (and are not refused as other settings)."""
    preset = asdict(SIZES[size])
    if preset["keys"] is None:
        del preset["keys"]
    return preset


def _entry(inst: Instrument, pitch: int, velocity: int, note_id: int) -> dict[str, Any]:
    """An examples.json entry: NSynth's fields (qualities unknown: all zero) plus provenance."""
    return {
        "note": note_id,
        "note_str": f"{inst.instrument_str}-{pitch:03d}-{velocity:03d}",
        "instrument": -1,  # set once every instrument is known
        "instrument_str": inst.instrument_str,
        "pitch": pitch,
        "velocity": velocity,
        "sample_rate": SAMPLE_RATE,
        "qualities": [0] * 10,
        "qualities_str": [],
        "instrument_family": FAMILIES.index(inst.family),
        "instrument_family_str": inst.family,
        "instrument_source": SOURCES[inst.source],
        "instrument_source_str": inst.source,
        "soundfont": inst.soundfont.name,
        "library": inst.library,
        "bank": 0,
        "program": inst.program,
        "preset_name": inst.preset_name,
        "sample_group": inst.group,
    }


def _complete(root: Path) -> bool:
    """Every examples.json present and every note it lists has its WAV."""
    for split in SPLITS:
        directory = split_dir(root, split)
        meta = directory / "examples.json"
        if not meta.is_file() or not (directory / "audio").is_dir():
            return False
        with os.scandir(directory / "audio") as entries:
            present = {e.name[:-4] for e in entries if e.name.endswith(".wav")}
        if not set(read_examples(meta)) <= present:
            return False
    return True


def _refuse_foreign(root: Path) -> None:
    """A non-empty root that is not a rendered corpus (say, a real NSynth download) is
    never written into."""
    if not root.is_dir() or (root / MARKER_NAME).is_file():
        return
    other = sorted(
        p.name
        for p in root.iterdir()
        if p.name != LOCK_NAME and not (p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX))
    )
    if other:
        raise DataError(
            f"{root} exists and is not a rendered corpus (no {MARKER_NAME}; it holds "
            f"{format_listing(other)}); choose an empty or new corpus root"
        )


def _locked(root: Path) -> AbstractContextManager[None]:
    """Exclusive lock on the corpus root for the whole render: concurrent workers wait,
    then find the corpus complete."""
    return exclusive(root / LOCK_NAME, f"waiting for another process rendering {root}")


def _read_marker(root: Path) -> dict[str, Any] | None:
    marker = root / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or "settings" not in data:
        raise DataError(f"{marker} is damaged; delete the corpus folder {root} and render it again")
    return data


def render_corpus(config: CorpusConfig, *, progress: bool = True) -> CorpusSummary:
    """Render the corpus described by `config`, resume an interrupted render, or confirm
    that it is complete (then nothing is rendered and the call takes well under a second)."""
    start = time.perf_counter()
    root = Path(config.root)
    settings = _settings(config, soundfonts(config))
    _refuse_foreign(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        marker = _read_marker(root)
        if marker is not None and marker["settings"] != settings:
            raise DataError(
                f"{root} holds a corpus rendered with other settings (see {root / MARKER_NAME}:"
                " size, seed, fractions, SoundFonts or renderer differ); choose another corpus "
                "root, or delete that folder to re-render it"
            )
        if marker is not None and marker.get("complete") and _complete(root):
            assert_instrument_disjoint(root)
            return summarize(
                root,
                dropped_silent=int(marker.get("dropped_silent", 0)),
                dropped_clipped=int(marker.get("dropped_clipped", 0)),
                seconds=time.perf_counter() - start,
            )
        return _render(config, root, settings, marker, progress, start)


def _render(
    config: CorpusConfig,
    root: Path,
    settings: dict[str, Any],
    marker: dict[str, Any] | None,
    progress: bool,
    start: float,
) -> CorpusSummary:
    instruments = plan_instruments(config)
    if not instruments:
        raise DataError(
            f"no General MIDI melodic presets (bank 0, programs of NSynth's families) in "
            f"{', '.join(str(p) for p in soundfonts(config))}; use General MIDI SoundFonts"
        )
    # Gains are kept from the interrupted attempt so resumed notes match the earlier ones.
    gains = (marker or {}).get("gains") or library_gains(
        instruments, config.size, progress=progress
    )
    marker_path = root / MARKER_NAME
    atomic_json(marker_path, {"settings": settings, "complete": False, "gains": gains})
    for split in SPLITS:
        audio_dir = split_dir(root, split) / "audio"
        audio_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(audio_dir, older_than=0.0)  # the lock is ours: none are live

    renderers: dict[Path, Renderer] = {}
    entries: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in SPLITS}
    plans = [(inst, note_plan(inst, config.size)) for inst in instruments]
    silent = clipped = rendered = note_id = 0
    with tqdm(
        total=sum(len(p) for _, p in plans),
        desc="rendering notes",
        unit="note",
        disable=not progress,
    ) as bar:
        for inst, plan in plans:
            audio_dir = split_dir(root, inst.split) / "audio"
            for pitch, velocity in plan:
                bar.update()
                entry = _entry(inst, pitch, velocity, note_id)
                note_id += 1
                final = audio_dir / f"{entry['note_str']}.wav"
                if not final.is_file():
                    if inst.soundfont not in renderers:
                        renderers[inst.soundfont] = Renderer(inst.soundfont)
                    audio = renderers[inst.soundfont].note(inst.preset_index, pitch, velocity)
                    audio *= gains[inst.library]
                    peak = float(np.abs(audio).max())
                    if peak < SILENT_PEAK:
                        silent += 1
                        log.debug("dropped silent note %s (peak %.2g)", entry["note_str"], peak)
                        continue
                    if peak >= 1.0:
                        clipped += 1
                        log.debug("dropped clipped note %s (peak %.2f)", entry["note_str"], peak)
                        continue
                    pcm = np.round(audio * 32767).astype(np.int16)  # faster than libsndfile's
                    write_wav = partial(
                        sf.write, data=pcm, samplerate=SAMPLE_RATE, subtype="PCM_16", format="WAV"
                    )
                    atomic_save(final, write_wav)
                    rendered += 1
                entries[inst.split][entry["note_str"]] = entry

    index = {name: i for i, name in enumerate(sorted({i.instrument_str for i in instruments}))}
    atomic_json(root / SAMPLES_NAME, instrument_samples(instruments))
    for split in SPLITS:
        for entry in entries[split].values():
            entry["instrument"] = index[entry["instrument_str"]]
        atomic_json(split_dir(root, split) / "examples.json", entries[split])
    assert_instrument_disjoint(root)
    atomic_json(
        marker_path,
        {
            "settings": settings,
            "complete": True,
            "gains": gains,
            "dropped_silent": silent,
            "dropped_clipped": clipped,
        },
    )
    seconds = time.perf_counter() - start
    log.info(
        "rendered %d notes into %s in %.1f s; dropped %d silent and %d clipped notes",
        rendered,
        root,
        seconds,
        silent,
        clipped,
    )
    summary = summarize(
        root, dropped_silent=silent, dropped_clipped=clipped, seconds=seconds, rendered=rendered
    )
    absent = [f for f in FAMILIES if f not in summary.notes["train"]]
    if absent:
        log.warning("families without train notes in %s: %s", root, ", ".join(absent))
    return summary


def instrument_samples(instruments: list[Instrument]) -> dict[str, dict[str, Any]]:
    """What the corpus check reads to prove splits share no sample: every instrument's split,
    preset and the content hashes of the samples it plays."""
    return {
        inst.instrument_str: {
            "split": inst.split,
            "soundfont": inst.soundfont.name,
            "preset_name": inst.preset_name,
            "sample_group": inst.group,
            "samples": sorted(inst.samples),
        }
        for inst in instruments
    }


def atomic_json(path: Path, data: object) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))
