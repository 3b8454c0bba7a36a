"""Whether data offered for scoring holds notes of a test split that is read only once.

A split fingerprint tells only whether two splits are identical: the test split minus one
note, copied elsewhere, has another fingerprint and would pass. What identifies a note is its
audio, so this compares the content hashes of the WAVs (remembered per file, see
`fingerprint.FileHashes`): any note of the candidate split that is a note of the held-out
test split, under whatever name or folder, is found.
"""

from __future__ import annotations

from pathlib import Path

from nsynth_research.core.errors import UserError
from nsynth_research.instruments.data.fingerprint import FileHashes
from nsynth_research.instruments.data.notes import split_dir


def _audio_digests(folder: Path) -> dict[str, str]:
    """Content hash of every WAV in `folder`, by file name."""
    hashes = FileHashes(folder)
    found = {p.name: hashes.digest(p) for p in sorted(folder.glob("*.wav"))}
    hashes.save()
    return found


def check_no_test_notes(model_root: str | Path | None, root: Path, split: str) -> None:
    """Refuse `split` under `root` if any of its notes is a note of the test split of the
    corpus the model was trained on (`model_root`); folders only (an archive is compared by
    its fingerprint)."""
    if not model_root:
        return
    held_out = split_dir(model_root, "test") / "audio"
    offered = split_dir(root, split) / "audio"
    if not held_out.is_dir() or not offered.is_dir() or held_out.resolve() == offered.resolve():
        return
    test = set(_audio_digests(held_out).values())
    notes = _audio_digests(offered)
    shared = sorted(name for name, digest in notes.items() if digest in test)
    if shared:
        raise UserError(
            f"{len(shared)} of {len(notes)} notes of {root} split {split} are notes of the test "
            f"split of the model's corpus ({model_root}), with the same audio (e.g. "
            f"{shared[0]}): scoring them would read that test split outside its study's "
            "single evaluation. Score data without them (the study's own test figure is in "
            "its evaluation run)"
        )
