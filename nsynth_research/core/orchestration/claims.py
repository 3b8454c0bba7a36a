"""The claim on a study's single test read, held in the study's own database.

A test read must be claimed before the first test prediction, and the claim must be atomic:
two `make evaluate` runs racing (two machines finishing a shared sweep together) may not both
read the test split. A check-then-set on an MLflow tag is not atomic. What is: inserting a row
under a unique key. Claims live in a small table of the project's own, `nsynth_test_reads`,
created through SQLAlchemy in the database that holds the Optuna study (SQLite, PostgreSQL,
MySQL: wherever Optuna's RDB storage lives), keyed by (study, read number). One INSERT records
the claim together with its evaluation run and its process, so no crash can leave a claim
that does not say whose it is; of two inserts of one key the database lets exactly one win.
The table is not an Optuna study, so claims never show among studies (optuna-dashboard).

Stores written before this table held each claim as an empty Optuna study `<study>:test-read-n`
with its run id set afterwards; those still count (a bare one, whose process died between
the two steps, is a read spent by a process that died before evaluating), and `adopt_legacy`
moves them into the table, out of the study list.

A claim is never released: an evaluation that crashes after claiming may already have seen
test predictions, so its FAILED run still blocks a silent second read. Only a forced read
takes the next number, and the summary then says the test split was read more than once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy as sa
from mlflow.exceptions import MlflowException

from nsynth_research.core.orchestration.orphans import STATE_TAG
from nsynth_research.core.orchestration.process import Owner

log = logging.getLogger(__name__)

TABLE = "nsynth_test_reads"
#: Name of the Optuna study that recorded read n of a study in stores made before TABLE.
LEGACY_NAME = "{study}:test-read-{number}"

_metadata = sa.MetaData()
_reads = sa.Table(
    TABLE,
    _metadata,
    sa.Column("study_name", sa.String(512), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("owner_host", sa.String(255), nullable=False),
    sa.Column("owner_pid", sa.Integer, nullable=False),
    sa.Column("owner_started", sa.String(64), nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False),
    #: Finished trials and the study's n_trials when the read was claimed (early reads).
    sa.Column("finished", sa.Integer, nullable=True),
    sa.Column("n_trials", sa.Integer, nullable=True),
)


@dataclass(frozen=True)
class ReadClaim:
    """One claimed read of a study's test split."""

    number: int
    #: The evaluation run; empty only for a legacy claim whose process died before naming it.
    run_id: str
    owner: Owner | None
    claimed_at: float
    forced: bool
    finished: int | None = None
    n_trials: int | None = None

    @property
    def early(self) -> bool:
        """Claimed before the study had finished its n_trials trials."""
        return self.n_trials is not None and (self.finished or 0) < self.n_trials

    @property
    def who(self) -> str:
        return str(self.owner) if self.owner else "an unknown process"


class ClaimLost(Exception):
    """Another evaluation claimed this read number first (it holds `read`)."""

    def __init__(self, read: ReadClaim) -> None:
        super().__init__(f"test read {read.number} was claimed by run {read.run_id}")
        self.read = read


def _engine(storage: optuna.storages.BaseStorage) -> sa.engine.Engine:
    """The SQLAlchemy engine under an Optuna RDB storage (cached or not)."""
    return getattr(storage, "engine", None) or storage._backend.engine  # type: ignore[attr-defined]


def _create_table(engine: sa.engine.Engine) -> None:
    """Create the claims table if missing; machines racing to create it all end up using it."""
    try:
        _metadata.create_all(engine, checkfirst=True)
    except sa.exc.DatabaseError:
        # Another process created it between our check and our CREATE.
        if not sa.inspect(engine).has_table(TABLE):
            raise


def _insert(engine: sa.engine.Engine, study_name: str, read: ReadClaim) -> bool:
    """Record `read` in one INSERT; False if its (study, number) key is taken already."""
    owner = read.owner or Owner("unknown", 0, "")
    row = {
        "study_name": study_name,
        "number": read.number,
        "run_id": read.run_id,
        "owner_host": owner.host,
        "owner_pid": owner.pid,
        "owner_started": owner.started,
        "claimed_at": read.claimed_at,
        "forced": read.forced,
        "finished": read.finished,
        "n_trials": read.n_trials,
    }
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(_reads).values(**row))
    except sa.exc.IntegrityError:
        return False
    return True


def _legacy_claims(storage: optuna.storages.BaseStorage, study_name: str) -> list[ReadClaim]:
    reads: list[ReadClaim] = []
    number = 1
    while True:
        try:
            claim_id = storage.get_study_id_from_name(
                LEGACY_NAME.format(study=study_name, number=number)
            )
        except KeyError:
            return reads
        attrs = storage.get_study_user_attrs(claim_id)
        owner = str(attrs.get("owner", ""))  # "pid N on host"
        pid, _, host = owner.removeprefix("pid ").partition(" on ")
        reads.append(
            ReadClaim(
                number=number,
                run_id=str(attrs.get("run_id", "")),
                owner=Owner(host, int(pid), "") if pid.isdigit() and host else None,
                claimed_at=float(attrs.get("claimed_at", 0.0)),
                forced=bool(attrs.get("forced", number > 1)),
            )
        )
        number += 1


def claimed_reads(storage: optuna.storages.BaseStorage, study_name: str) -> list[ReadClaim]:
    """Every claimed read of the study, in order (empty: the test split was never read).
    Reading never writes: a store without the claims table has only legacy claims."""
    engine = _engine(storage)
    found = {r.number: r for r in _legacy_claims(storage, study_name)}
    if sa.inspect(engine).has_table(TABLE):
        query = sa.select(_reads).where(_reads.c.study_name == study_name)
        with engine.connect() as conn:
            for row in conn.execute(query).mappings():
                found[row["number"]] = ReadClaim(
                    number=row["number"],
                    run_id=row["run_id"],
                    owner=Owner(row["owner_host"], row["owner_pid"], row["owner_started"]),
                    claimed_at=row["claimed_at"],
                    forced=row["forced"],
                    finished=row["finished"],
                    n_trials=row["n_trials"],
                )
    return [found[n] for n in sorted(found)]


def claim_test_read(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    run_id: str,
    *,
    force: bool,
    finished: int | None = None,
    n_trials: int | None = None,
) -> ReadClaim:
    """Claim the next read of the study's test split for `run_id`, atomically, in one INSERT.

    Without `force` only read 1 may be claimed: if it exists (or another process inserts it
    first), `ClaimLost` names its holder. With `force`, the next free number is taken.
    """
    engine = _engine(storage)
    _create_table(engine)
    me = Owner.me()
    while True:
        held = claimed_reads(storage, study_name)
        if held and not force:
            raise ClaimLost(held[0])
        read = ReadClaim(
            number=held[-1].number + 1 if held else 1,
            run_id=run_id,
            owner=me,
            claimed_at=time.time(),
            forced=bool(held),
            finished=finished,
            n_trials=n_trials,
        )
        if _insert(engine, study_name, read):
            return read
        # Another process took this number first: look again.


def adopt_legacy(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    """Move the study's legacy claim studies into the claims table (and out of the study
    list). Each row is inserted before its study is deleted, so a crash loses no claim."""
    legacy = _legacy_claims(storage, study_name)
    if not legacy:
        return 0
    engine = _engine(storage)
    _create_table(engine)
    for read in legacy:
        _insert(engine, study_name, read)  # False: adopted before, by us or another process
        name = LEGACY_NAME.format(study=study_name, number=read.number)
        with contextlib.suppress(KeyError):  # deleted before, by us or another process
            storage.delete_study(storage.get_study_id_from_name(name))
    log.info("study %s: %d test-read claim(s) moved out of the study list", study_name,
             len(legacy))  # fmt: skip
    return len(legacy)


def describe_read(read: ReadClaim, client: Any) -> str:
    """'run X', or what a claim whose run did not finish means for the test figure."""
    if not read.run_id:
        return (
            f"a read claimed by {read.who}, whose process died before it recorded its "
            "evaluation run: test predictions may have been made, so the read counts"
        )
    try:
        run = client.get_run(read.run_id)
        state = run.data.tags.get(STATE_TAG, run.info.status)
        status = run.info.status
    except MlflowException:
        state = status = "unknown"
    if state == "FINISHED":
        return f"run {read.run_id}"
    if status == "RUNNING" and not (read.owner and read.owner.gone()):
        ago = time.time() - read.claimed_at
        return (
            f"run {read.run_id}, still in progress ({read.who}, claimed {ago:.0f} s ago): "
            "its result will be in that run"
        )
    if status == "RUNNING":
        state = "with its process gone"
    return (
        f"run {read.run_id}, which ended {state} after claiming the read ({read.who}): "
        "test predictions may have been made, so the read counts"
    )
