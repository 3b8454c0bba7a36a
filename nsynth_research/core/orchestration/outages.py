"""Failures of the machine rather than of the code or the input, recognised wherever a library
wrapped them, so the command line can say them in one line: a full disk, a read-only store, a
database that went away, files deleted from under a running command. Anything else stays a
bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator

from nsynth_research.core.files import disk_full
from nsynth_research.core.orchestration.urls import redact

_READ_ONLY = ("readonly database", "read-only file system", "read-only database")
_UNREACHABLE = (
    "could not connect",
    "connection refused",
    "server closed the connection",
    "connection to server",
    "timeout expired",
    "could not translate host name",
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        hidden = seen.__suppress_context__  # `raise ... from None`: its own message says it
        seen = seen.__cause__ or (None if hidden else seen.__context__)


def _detail(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__


def machine_failure(exc: BaseException) -> str | None:
    """One line saying what failed and what to do, or None when `exc` is not the machine's."""
    if disk_full(exc):
        cause = next(e for e in reversed(list(_chain(exc))) if disk_full(e))  # the deepest
        return (
            f"the disk is full ({_detail(cause)}); free space where the stores, data and "
            "feature cache live and rerun: the next command closes what this one left open"
        )
    for e in _chain(exc):
        text = str(e).lower()
        if (isinstance(e, OSError) and e.errno == errno.EROFS) or any(
            t in text for t in _READ_ONLY
        ):
            return (
                f"a store this command writes is read-only ({_detail(e)}); make it writable, "
                "or point tracking.store (or NSYNTH_TRACKING_URI / NSYNTH_STORAGE) elsewhere"
            )
        if type(e).__name__ == "OperationalError" and any(t in text for t in _UNREACHABLE):
            return (
                f"lost the connection to a database this command uses ({_detail(e)}); check "
                "that it is up and reachable, then rerun (the study resumes)"
            )
        if isinstance(e, FileNotFoundError) or (
            type(e).__name__ == "NotFoundError" and "no such file or directory" in text
        ):
            return (
                f"a file this command was reading is gone ({_gone(e)}): was its folder moved "
                "or deleted while it ran? Restore it and rerun"
            )
    return None


def _gone(exc: BaseException) -> str:
    """The missing path: an OSError names it; TensorFlow puts it before '; No such file'."""
    if isinstance(exc, OSError) and exc.filename:
        return str(exc.filename)
    before = str(exc).split("; No such file or directory")[0]
    return before.rsplit(" ", 1)[-1] or _detail(exc)


#: Loggers that report a failed database write with its traceback before raising it.
NOISY_LOGGERS = ("mlflow.store.db.utils",)


class QuietMachineFailures(logging.Filter):
    """Drops library log records about a machine failure: the error is raised anyway, and
    the command line says it once, in one line, instead of a traceback per failed write."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or machine_failure(error) is None


def quiet_machine_failures() -> None:
    """Install `QuietMachineFailures` on the libraries' noisy loggers, once per process."""
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietMachineFailures) for f in logger.filters):
            logger.addFilter(QuietMachineFailures())
