"""Which PCM sample data each SoundFont preset plays, and the groups of presets that share it.

Small GM SoundFonts build many presets from the same recordings: in TimGM6mb "Strings
(Tremelo)" plays only the samples of "Strings CLP", and "Piano 1" only those of the other
pianos. A preset in the test split that plays a training preset's samples measures memory,
not generalisation, so presets are grouped by the content of the samples they play (a hash of
the sample bytes, so the grouping holds across SoundFonts that copy the same recordings too)
and a whole group lands in one split.

SoundFonts are parsed with `sf2utils` (PyPI). It reads SF2 headers and 16/24-bit PCM; for
SF3 (Ogg Vorbis compressed samples, flagged in the raw sample header) the sample's start and
end are byte offsets into the compressed stream, which this module hashes directly.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Hashable, Iterable
from pathlib import Path

from nsynth_research.core.errors import DataError

#: SF3 marks a sample whose data is Ogg Vorbis compressed with this sample-type bit.
SF3_COMPRESSED = 0x10
#: Hex digits kept of each sample's SHA-256: 64 bits, no collision among a few thousand.
DIGEST_CHARS = 16


def preset_samples(path: Path) -> dict[tuple[int, int], frozenset[str]]:
    """(bank, program) -> content hashes of every sample any zone of the preset plays."""
    from sf2utils.sf2parse import Sf2File

    # sf2utils logs a warning for every loop point it finds unusual; they do not matter here.
    quiet = logging.getLogger().manager.disable
    logging.disable(logging.WARNING)
    try:
        with Path(path).open("rb") as handle:
            try:
                sf2 = Sf2File(handle)
                headers = sf2.raw.pdta["Shdr"]
                offset = sf2.raw.smpl_offset
                digests = [_sample_digest(handle, offset, h, sf2.raw.sm24_offset) for h in headers]
                index = {id(s): i for i, s in enumerate(sf2.samples)}
                out: dict[tuple[int, int], frozenset[str]] = {}
                for preset in sf2.presets:
                    if preset.name == "EOP":
                        continue
                    found = {
                        digests[index[id(sample)]]
                        for bag in preset.bags
                        if bag.instrument is not None
                        for sample in bag.instrument.samples
                    }
                    out[(preset.bank, preset.preset)] = frozenset(found)
            except (KeyError, AttributeError, ValueError, IndexError, OSError) as exc:
                raise DataError(
                    f"{path}: its sample tables could not be read ({type(exc).__name__}: "
                    f"{exc}); check the SoundFont or remove it from `soundfonts`"
                ) from None
    finally:
        logging.disable(quiet)
    return out


def _sample_digest(handle, smpl_offset: int | None, header, sm24_offset: int | None) -> str:
    """Hash of one sample's data: PCM frames (plus 24-bit low bytes), or SF3's Ogg bytes."""
    if smpl_offset is None:
        raise ValueError("no smpl chunk")
    digest = hashlib.sha256()
    if header.sample_type & SF3_COMPRESSED:
        handle.seek(smpl_offset + header.start)
        digest.update(handle.read(max(0, header.end - header.start)))
    else:
        frames = max(0, header.end - header.start)
        handle.seek(smpl_offset + 2 * header.start)
        digest.update(handle.read(2 * frames))
        if sm24_offset is not None:
            handle.seek(sm24_offset + header.start)
            digest.update(handle.read(frames))
    return digest.hexdigest()[:DIGEST_CHARS]


def connected_groups(members: dict[Hashable, Iterable[Hashable]]) -> dict[Hashable, int]:
    """Member -> group number, where members sharing any key (a sample hash, a declared
    library and program) are in one group, transitively. Numbers follow first appearance."""
    parent: dict[Hashable, Hashable] = {}

    def find(x: Hashable) -> Hashable:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for member, keys in members.items():
        root = find(("member", member))
        for key in keys:
            parent[find(("key", key))] = root
            root = find(root)
    numbers: dict[Hashable, int] = {}
    out = {}
    for member in members:
        out[member] = numbers.setdefault(find(("member", member)), len(numbers))
    return out
