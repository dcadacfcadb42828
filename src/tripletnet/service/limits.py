"""ASGI middlewares: refuse request bodies over a size limit (413), and answer any unforeseen
error with a logged 500 whose body is JSON, like every other error of the service."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException

Scope = dict[str, Any]
INTERNAL_ERROR = "internal server error: the request failed on the server, where it is logged"

log = logging.getLogger("tripletnet.service")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", " ": "\\x20"}


def loggable(text: str) -> str:
    """``text`` on one log line, one field: backslash escapes for backslashes, spaces, control
    and other unprintable characters (a path's ``%0A`` cannot forge a line, nor ``%00`` a NUL)."""
    if text.isprintable() and " " not in text and "\\" not in text:
        return text
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


async def send_json_error(
    send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a whole response: ``{"detail": detail}`` with ``status`` (and extra ``headers``)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class TrackedSend:
    """A middleware's ``send`` that notes whether the response has started (after which no
    error answer can be sent in its place)."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Any) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class JsonErrors:
    """Log an exception that escapes the app and answer 500 with a JSON ``detail``.

    Unlike Starlette's own handler it does not re-raise, so the server keeps the connection.
    An error after the response has started is re-raised: the server has to close it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if tracked.started:
                raise
            method, path = (loggable(str(scope.get(key))) for key in ("method", "path"))
            log.exception("%s %s failed", method, path)
            await send_json_error(send, 500, INTERNAL_ERROR)


class BodyTooLarge(HTTPException):
    """Raised while the body streams in: an HTTPException, so that FastAPI's body parsing lets
    it through (it answers any other exception there with a 400) and it is answered 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))


def too_large(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes"


class BodySizeLimit:
    """413 when Content-Length says too much, or as soon as a streamed (chunked) body grows
    past the limit: ``max_bytes``, or the smaller one ``paths`` gives a path."""

    def __init__(self, app: Any, max_bytes: int, paths: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = {path: min(limit, max_bytes) for path, limit in (paths or {}).items()}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope["path"], self.max_bytes)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0").decode() or "0"
        if declared.isdigit() and int(declared) > limit:
            await send_json_error(send, 413, too_large(limit))
            return
        received = 0

        async def capped_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        tracked = TrackedSend(send)
        try:
            await self.app(scope, capped_receive, tracked)
        except BodyTooLarge as error:
            if not tracked.started:
                await send_json_error(send, 413, str(error.detail))
