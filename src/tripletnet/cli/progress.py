"""``--no-progress``, on every command that draws a progress bar (train, pretrain, evaluate,
embed, index build, robustness): it hides the bars (``tripletnet.progress``) while the command
runs. Bars are drawn only where stderr is a terminal, with or without it."""

from __future__ import annotations

import click

from ..progress import reset_shown, set_shown

HELP = "Hide the progress bar (it is drawn only where stderr is a terminal)."


def _hide(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value:
        return
    token = set_shown(False)
    ctx.call_on_close(lambda: reset_shown(token))


progress_option = click.option(
    "--no-progress", is_flag=True, expose_value=False, callback=_hide, help=HELP
)
