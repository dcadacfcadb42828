"""Access control: a bearer token for writes (and, with ``protect_reads``, for reads).

    Authorization: Bearer <token>

401 without a token (with ``WWW-Authenticate: Bearer``), 403 with a wrong one. The token is
compared in constant time (``hmac.compare_digest``) and never logged nor echoed: the
middleware answers before the request's body is read, and no message quotes the header.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TripletnetError
from .limits import Scope, send_json_error

TOKEN_VARIABLE = "TRIPLETNET_TOKEN"
MIN_TOKEN = 16
OPEN_PATHS = ("/", "/health", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc")


def load_token(token_file: Path | None) -> str | None:
    """The token from ``token_file`` or the TRIPLETNET_TOKEN variable (None: neither)."""
    from_env = os.environ.get(TOKEN_VARIABLE)
    if token_file is not None and from_env:
        raise TripletnetError(f"give the token once: --token-file or {TOKEN_VARIABLE}, not both")
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise TripletnetError(
                f"cannot read the token file {token_file}: {error.strerror if isinstance(error, OSError) else 'not UTF-8 text'}"
            ) from None
        where = f"the token file {token_file}"
    elif from_env is not None:
        token, where = from_env.strip(), TOKEN_VARIABLE
    else:
        return None
    if len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable() or " " in token:
        raise TripletnetError(
            f"{where} must hold one token of at least {MIN_TOKEN} printable ASCII characters "
            "without spaces (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def token_file_warning(token_file: Path) -> str | None:
    """A one-line warning when other users may read (or change) the token file; None if not."""
    if os.name != "posix":  # Windows: no mode bits to go by
        return None
    try:
        mode = token_file.stat().st_mode & 0o777
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"warning: other users can read the token file {token_file} (mode {mode:03o}): "
        f"chmod 600 {token_file}"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(host: str, token: str | None, insecure: bool, protect_reads: bool) -> None:
    """Refuse a network-facing service without a token, unless told it is on purpose."""
    if protect_reads and token is None:
        raise TripletnetError(f"--protect-reads needs a token: --token-file or {TOKEN_VARIABLE}")
    if token is None and not insecure and not is_loopback(host):
        raise TripletnetError(
            f"refusing to listen on {host} without a token: anyone who reaches it could change "
            f"the index; give --token-file FILE (or {TOKEN_VARIABLE}), or --insecure"
        )


@dataclass(frozen=True)
class Access:
    """Who may do what: no token, everything is open."""

    token: str | None = None
    protect_reads: bool = False

    def needs_token(self, method: str, path: str) -> bool:
        if self.token is None or (method == "GET" and path in OPEN_PATHS):
            return False
        is_write = method in ("POST", "DELETE", "PUT", "PATCH") and path.startswith("/items")
        return is_write or self.protect_reads

    def refusal(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        """(status, detail) when the request's token is missing or wrong; None when it is right."""
        assert self.token is not None
        scheme, _, given = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return (
                401,
                "this request needs a token: send the header 'Authorization: Bearer <token>'",
            )
        if not hmac.compare_digest(given.strip().encode("latin-1"), self.token.encode()):
            return 403, "the token is not valid for this service"
        return None


class RequireToken:
    """ASGI middleware: 401/403 before the body is read, for the requests ``access`` guards."""

    def __init__(self, app: Any, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.access.needs_token(scope["method"], scope["path"]):
            refused = self.access.refusal(dict(scope.get("headers") or []))
            if refused is not None:
                status, detail = refused
                extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
                await send_json_error(send, status, detail, extra)
                return
        await self.app(scope, receive, send)
