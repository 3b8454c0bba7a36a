"""What software a run was made with, beside its code version: the lock file the environment
was installed from and the versions of the packages that decide its numbers.

A commit pins the project's code, not the TensorFlow, Keras or NumPy under it; a run logged
today is re-created next year only if those can be told apart. `make venv` installs from
`requirements/<variant>.lock` (pinned with hashes) and leaves a copy of it in the environment,
so a run records which lock it ran on, and `make reproduce` says when it differs.
"""

from __future__ import annotations

import hashlib
import sys
from importlib import metadata
from pathlib import Path

#: The copy of the lock file `make venv` installed from, inside the environment.
INSTALLED_LOCK = "installed.lock"
#: Packages whose versions change numbers; logged one by one, so a difference can be named.
MAIN_PACKAGES = (
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "scipy",
    "librosa",
    "scikit-learn",
    "optuna",
    "mlflow",
    "music21",
    "pretty_midi",
)
VERSIONS_TAG = "package_versions"
LOCK_TAG = "lock_sha256"


def installed_lock(prefix: Path | None = None) -> Path:
    return Path(prefix or sys.prefix) / INSTALLED_LOCK


def lock_digest(prefix: Path | None = None) -> str:
    """sha256 of the lock the environment was installed from; 'none' if it was not."""
    path = installed_lock(prefix)
    if not path.is_file():
        return "none"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_versions(names: tuple[str, ...] = MAIN_PACKAGES) -> dict[str, str]:
    """Installed versions of `names` (those not installed are left out)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def format_versions(versions: dict[str, str]) -> str:
    return " ".join(f"{k}=={v}" for k, v in sorted(versions.items()))


def parse_versions(text: str) -> dict[str, str]:
    pairs = (item.partition("==") for item in text.split())
    return {name: version for name, _, version in pairs if version}


def environment_tags() -> dict[str, str]:
    """Tags every run carries beside its git commit."""
    return {LOCK_TAG: lock_digest(), VERSIONS_TAG: format_versions(package_versions())}


def environment_differences(tags: dict[str, str]) -> list[str]:
    """What differs between the environment a run was logged with and this one, in words."""
    out = []
    then, now = tags.get(LOCK_TAG), lock_digest()
    if then and then != now:
        out.append(f"installed from another lock file (run: {then[:12]}, now: {now[:12]})")
    old, new = parse_versions(tags.get(VERSIONS_TAG, "")), package_versions()
    changed = [
        f"{name} {old[name]} -> {new.get(name, 'not installed')}"
        for name in sorted(old)
        if old[name] != new.get(name)
    ]
    if changed:
        out.append("package versions differ: " + ", ".join(changed))
    return out
