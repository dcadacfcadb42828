"""Every error a route may raise, answered in one place: its status and its one-line JSON
``detail``. Input the index refuses is a 422, an image too large a 413 and none at all a 415;
a write the index refuses says why and that nothing was applied (405 read-only, 409 changed
under it or an id taken, 507 disk full, 503 a folder that cannot be changed). Anything else is
a logged 500 (limits.JsonErrors)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..search.changelog import DamagedLogError
from ..search.filters import InvalidInput
from ..search.images import ImageError, ImageTooLargeError
from ..search.index import ChosenIdError
from ..search.live import DiskFullError, ReadOnlyIndexError
from ..search.store import IndexChangedError, IndexFolderError


def _name(request: Request) -> str:
    name: str = request.app.state.service.live.name
    return name


def _refused(error: IndexFolderError, name: str) -> str:
    what = (
        f"its change log is damaged at line {error.line}"
        if isinstance(error, DamagedLogError)
        else "its folder cannot be read"
    )
    return (
        f"the index {name} cannot be changed: {what}; nothing was applied (the server's log "
        "says how to recover)"
    )


def validation_detail(errors: Sequence[Any]) -> str:
    """Pydantic's errors as one line: 'vector: Input should be a valid list; ...'."""
    lines = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"] if part not in ("body", "path"))
        where = where or "JSON body"  # the body's own errors: not JSON, not an object
        message = str(error["msg"])
        lines.append(message if message.startswith(where) else f"{where}: {message}")
    return "; ".join(lines)


# status, and the detail from the error and the index's name (most specific class wins)
ANSWERS: dict[type[Exception], tuple[int, Callable[[Any, str], str]]] = {
    RequestValidationError: (422, lambda error, _: validation_detail(error.errors())),
    InvalidInput: (422, lambda error, _: str(error)),
    ChosenIdError: (409, lambda error, _: str(error)),
    ImageTooLargeError: (413, lambda error, _: str(error)),
    ImageError: (415, lambda error, _: str(error)),
    ReadOnlyIndexError: (
        405,
        lambda _, __: (
            "this service serves a memory-mapped index read-only; restart it without --mmap"
        ),
    ),
    IndexChangedError: (
        409,
        lambda _, name: (
            f"the index {name} was changed by another process; the service has "
            "loaded the live version: repeat the request"
        ),
    ),
    DiskFullError: (
        507,
        lambda error, name: (
            f"disk full: the index {name} could not record the change "
            f"({error.reason}); nothing was applied: free space on the server and repeat the request"
        ),
    ),
    IndexFolderError: (503, _refused),
}


def add_error_handlers(app: FastAPI) -> None:
    """Answer each error of ANSWERS with its status and detail."""

    async def answer(request: Request, error: Exception) -> JSONResponse:
        status, detail = next(ANSWERS[kind] for kind in type(error).__mro__ if kind in ANSWERS)
        return JSONResponse({"detail": detail(error, _name(request))}, status_code=status)

    for kind in ANSWERS:
        app.add_exception_handler(kind, answer)
