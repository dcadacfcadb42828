"""Progress bars for the long steps (training, embedding, evaluation, robustness), all made by
``progress`` so that they look and behave alike: on stderr, gone when done, and never drawn into
a stderr that is not a terminal (a log file, a pipe, CI), which would fill it with ``\\r`` frames
(tqdm's ``disable=None``). ``showing(False)`` (``tripletnet ... --no-progress``) hides them in
a terminal too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_SHOWN: ContextVar[bool] = ContextVar("tripletnet_progress_shown", default=True)


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    show: bool | None = None,
    **options: Any,
) -> Any:
    """A tqdm bar; ``show`` None: as ``showing`` says (default: shown). A shown bar is still
    drawn only where stderr is a terminal."""
    from tqdm import tqdm

    shown = _SHOWN.get() if show is None else show
    settings: dict[str, Any] = {"leave": False, "mininterval": 0.5, **options}
    # disable None: off where the bar's stream (stderr) is not a terminal
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=None if shown else True,
                **settings)  # fmt: skip


@contextmanager
def showing(show: bool) -> Iterator[None]:
    """Show (or hide) the bars that ``progress`` makes inside the block."""
    token = _SHOWN.set(show)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def set_shown(show: bool) -> Any:
    """Show or hide the bars from here on; returns the token that ``reset_shown`` takes (for a
    command's option, whose end is a callback rather than a block)."""
    return _SHOWN.set(show)


def reset_shown(token: Any) -> None:
    _SHOWN.reset(token)
