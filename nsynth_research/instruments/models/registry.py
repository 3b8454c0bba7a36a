"""Which architectures `model.arch` can name, and the config type of the `model:` section.

`model:` validates as the architecture its `arch` names (`cnn` when absent, so configs
written for the seed CNN keep meaning the same network), and errors name keys as the user
wrote them (`model.filters`, not pydantic's tagged `model.cnn.filters`).
"""

from __future__ import annotations

from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from pydantic import (
    Discriminator,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from nsynth_research.instruments.models.cnn import CnnConfig
from nsynth_research.instruments.models.mlp import MlpConfig
from nsynth_research.instruments.models.plan import Architecture

#: `model.arch` value -> its config section (one line per architecture).
ARCHITECTURES: dict[str, type[Architecture]] = {
    "cnn": CnnConfig,
    "mlp": MlpConfig,
}
DEFAULT_ARCH = "cnn"


def _as_written(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """`model:` without `arch` as the default architecture, and pydantic's errors with the
    architecture tag taken out of each key, an unknown `arch` reported at `model.arch`, and
    an unknown key told which architecture it is not part of."""
    if isinstance(value, dict) and "arch" not in value:
        value = {**value, "arch": DEFAULT_ARCH}
    try:
        return handler(value)
    except ValidationError as exc:
        details: list[InitErrorDetails] = []
        listed = False
        for err in exc.errors():
            loc, kind, msg, got = err["loc"], err["type"], err["msg"], err["input"]
            arch = loc[0] if loc and loc[0] in ARCHITECTURES else None
            if arch is not None:
                loc = loc[1:]
            if kind == "union_tag_invalid":
                kind, loc, got = "unknown_arch", ("arch",), value["arch"]
                msg = f"unknown architecture; model.arch is one of {', '.join(ARCHITECTURES)}"
            elif kind == "extra_forbidden" and arch is not None and len(loc) == 1:
                kind, msg = "unknown_key", f"unknown key for model.arch {arch}"
                if not listed:
                    msg += f", whose keys are {', '.join(ARCHITECTURES[str(arch)].model_fields)}"
                    listed = True
            details.append(
                {"type": PydanticCustomError(kind, "{msg}", {"msg": msg}), "loc": loc, "input": got}
            )
        raise ValidationError.from_exception_data(exc.title, details) from None


#: The `model:` section: the architecture `arch` names, validated as that one.
if TYPE_CHECKING:
    # mypy cannot read a union built at runtime; every member is an Architecture.
    ModelSection: TypeAlias = Architecture
else:
    ModelSection = Annotated[
        reduce(or_, ARCHITECTURES.values()),
        Discriminator("arch"),
        WrapValidator(_as_written),
    ]
