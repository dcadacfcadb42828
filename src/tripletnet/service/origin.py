"""Browsers: which ``Host`` the service answers, and which web pages may write to it.

A service on 127.0.0.1 without a token is open to every program of the machine, and so to the
web pages its browser shows. Two checks keep those pages out:

- DNS rebinding: a page of ``evil.example`` re-points its name to 127.0.0.1 and then reads and
  writes the service as if it were its own site. Its requests carry ``Host: evil.example``, so
  the service answers only the names it is reached by: the address it listens on (127.0.0.1 or
  ``localhost`` also: ``localhost``, ``127.0.0.1`` and ``[::1]``; 0.0.0.0 or ``::``: those, the
  machine's own names and any IP address, which a browser only sends to the address it names)
  and the names the operator allows (``--allowed-host``; ``*`` turns the check off). Anything
  else is a 400. The port is not compared: a browser always sends the port it connected to, so
  it cannot tell an attacker from a forwarded port (``ssh -L``, ``docker -p``).
- Cross-site writes (CSRF): a page may send a simple POST (a form, multipart) to any address
  without CORS. Unsafe methods (POST, PUT, PATCH, DELETE) are refused (403) when the browser
  says they come from another site: ``Sec-Fetch-Site`` other than ``same-origin`` or ``none``,
  or an ``Origin`` other than the request's own ``scheme://host``. Clients that are not
  browsers send neither header and are not affected; the service's own page is same-origin.

``X-Forwarded-Host`` is never read: behind a reverse proxy, allow the public name the proxy
passes in ``Host`` with ``--allowed-host``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import TripletnetError
from .limits import Scope, send_json_error

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("", "0.0.0.0", "::")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_ORIGIN_SITES = ("same-origin", "none")  # none: typed in, or a bookmark
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def split_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` value's (name, port): lowercased, an IPv6 address without its brackets, an IP
    address in its canonical form; None when it is no host."""
    value = value.strip().lower()
    port: str | None = None
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name = value
    name = name.rstrip(".")
    if port is not None and not (port.isdigit() and int(port) <= 65535):
        return None
    try:
        name = str(ipaddress.ip_address(name))
    except ValueError:
        if ":" in name or not name or not all(c.isalnum() or c in "-._" for c in name):
            return None
    return name, None if port is None else int(port)


def _address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Hosts:
    """The ``Host`` names a service answers (``any_address``: every IP address too)."""

    names: frozenset[str]
    any_address: bool = False
    any_name: bool = False

    @classmethod
    def for_bind(cls, bind: str | None, allowed: Iterable[str] = ()) -> Hosts | None:
        """The names of a service listening on ``bind``, with the ``allowed`` ones; None (no
        check) when neither is given, as for an app made in a program or a test."""
        allowed = list(allowed)
        if bind is None and not allowed:
            return None
        names: set[str] = set()
        any_name = False
        for given in allowed:
            if given.strip() == "*":
                any_name = True
                continue
            parsed = split_host(given)
            if parsed is None or parsed[1] is not None:
                raise TripletnetError(
                    f"--allowed-host takes a host name or an IP address without a port, "
                    f"got {given!r}"
                )
            names.add(parsed[0])
        wildcard = False
        if bind is not None:
            bind = bind.strip().strip("[]").lower()
            wildcard = bind in WILDCARDS
            parsed = split_host(bind if ":" not in bind else f"[{bind}]")
            if parsed is not None and not wildcard:
                names.add(parsed[0])
            if wildcard or bind == "localhost" or (_address(bind) and _loopback(bind)):
                names.update(LOOPBACK_NAMES)
            if not (bind == "localhost" or (_address(bind) and _loopback(bind))):
                names.update(_own_names())
        return cls(frozenset(names), any_address=wildcard, any_name=any_name)

    def accepts(self, host: str) -> bool:
        if self.any_name:
            return True
        parsed = split_host(host)
        if parsed is None:
            return False
        name = parsed[0]
        return name in self.names or (self.any_address and _address(name))


def _loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def _own_names() -> set[str]:
    """This machine's host name and fully qualified name (lowercased)."""
    names = set()
    for name in (socket.gethostname(), socket.getfqdn()):
        parsed = split_host(name)
        if parsed is not None:
            names.add(parsed[0])
    return names


def _same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether ``Origin`` is the request's own scheme://host (a TLS proxy in front: https)."""
    given_scheme, sep, rest = origin.strip().lower().partition("://")
    own = split_host(host)
    theirs = split_host(rest) if sep and "/" not in rest else None
    if own is None or theirs is None or given_scheme not in (scheme, "https"):
        return False
    own_port = own[1] or DEFAULT_PORTS.get(scheme)
    their_port = theirs[1] or DEFAULT_PORTS.get(given_scheme)
    if given_scheme != scheme and own[1] is None:  # behind a TLS proxy: Host has no port
        own_port = their_port
    return (own[0], own_port) == (theirs[0], their_port)


def cross_site(method: str, scheme: str, headers: dict[bytes, bytes]) -> str | None:
    """Why a browser's request is refused as a cross-site write, or None."""
    if method not in UNSAFE_METHODS:
        return None
    site = headers.get(b"sec-fetch-site")
    if site is not None and site.decode("latin-1").strip().lower() not in SAME_ORIGIN_SITES:
        return (
            f"a web page of another site may not send {method} requests to this service "
            "(Sec-Fetch-Site: cross-site); use the service's own page at /, or a client that "
            "is not a browser"
        )
    origin = headers.get(b"origin")
    host = headers.get(b"host", b"").decode("latin-1")
    if origin is not None and not _same_origin(origin.decode("latin-1"), scheme, host):
        return (
            f"a web page of another origin may not send {method} requests to this service "
            "(its Origin header is not this service's address); use the service's own page "
            "at /, or a client that is not a browser"
        )
    return None


class CheckOrigin:
    """ASGI middleware: 400 for a ``Host`` that is not the service's, 403 for a cross-site
    write; both before the body is read."""

    def __init__(self, app: Any, hosts: Hosts | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1")
            if self.hosts is not None and not self.hosts.accepts(host):
                await send_json_error(send, 400, _foreign_host(host))
                return
            refused = cross_site(scope["method"], scope.get("scheme", "http"), headers)
            if refused is not None:
                await send_json_error(send, 403, refused)
                return
        await self.app(scope, receive, send)


def _foreign_host(host: str) -> str:
    parsed = split_host(host)
    if not host:
        return "the request has no Host header: send the name this service is reached by"
    shown = host if parsed is None else parsed[0]
    if len(shown) > 100 or not shown.isprintable() or not shown.isascii():
        shown = repr(shown[:100])
    return (
        f"this service does not answer to the host name {shown} (Host header): if that is a "
        f"name of this service (a reverse proxy, a DNS name of this machine), start it with "
        f"--allowed-host {shown if parsed else 'NAME'}"
    )
