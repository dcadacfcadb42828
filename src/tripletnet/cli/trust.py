"""``--trust-model-code``, on every command that loads a run: it sets TRIPLETNET_TRUST_MODEL_CODE
for the command's duration (``tripletnet.trust``), so the library and serve's workers see it."""

from __future__ import annotations

import os
from typing import Any

import click

from ..trust import TRUST_FLAG, TRUST_VARIABLE


def _trust(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Set the variable while the command runs; put back what was there when it ends."""
    if not value:
        return
    previous = os.environ.get(TRUST_VARIABLE)
    os.environ[TRUST_VARIABLE] = "1"

    def restore() -> None:
        if previous is None:
            os.environ.pop(TRUST_VARIABLE, None)
        else:
            os.environ[TRUST_VARIABLE] = previous

    ctx.call_on_close(restore)


SETTINGS: dict[str, Any] = {
    "is_flag": True,
    "expose_value": False,
    "callback": _trust,
    "help": "Load a run whose net is its own code (package.module:factory): import that module "
    f"and call the factory. Only for runs you trust (or set {TRUST_VARIABLE}=1).",
}

trust_option = click.option(TRUST_FLAG, **SETTINGS)  # for the commands' decorators


def trust_parameter() -> click.Option:
    """The same option, for commands whose options are built as a list (train, pretrain)."""
    return click.Option([TRUST_FLAG], **SETTINGS)
