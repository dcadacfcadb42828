"""ASGI middlewares: refuse request bodies over a size limit (413), and answer any unforeseen
error with a logged 500 whose body is JSON, like every other error of the service."""

from __future__ import annotations

import json
import logging
from typing import Any

Scope = dict[str, Any]
INTERNAL_ERROR = "internal server error: the request failed on the server, where it is logged"

log = logging.getLogger("tripletnet.service")


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
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            await send_json_error(send, 500, INTERNAL_ERROR)


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """413 when Content-Length says too much, or when a streamed body grows past ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0").decode() or "0"
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def capped_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        await send_json_error(
            send, 413, f"request body too large: the limit is {self.max_bytes} bytes"
        )
