"""What operators see: a request id and an access-log line per request, and Prometheus metrics.

Each request gets an id (the client's ``X-Request-ID`` when it is 1 to 64 letters, digits,
``.``, ``_`` or ``-``; a fresh uuid4 otherwise), returned in the response's ``X-Request-ID``
and logged by ``tripletnet.service.access`` as

    request_id=3f2a... method=POST path=/search status=200 ms=12.3

(never a header, a query string or a body, so never a token). The method and the decoded path
are escaped (limits.loggable: ``\\n``, ``\\x00``, ``\\x20``...): a request is always one line,
and its fields cannot be forged. Metrics, in Prometheus' text format at ``GET /metrics``
(prometheus-client, in the ``serve`` extra):

    tripletnet_requests_total{method, route, status}      counter
    tripletnet_request_seconds{method, route}             histogram
    tripletnet_items                                      gauge: items in the index
    tripletnet_index_version                              gauge: the live version's number

``route`` is the route's template (``/items/{item_id}``), so ids do not multiply the series.
With ``--workers N`` the workers share one multiprocess collection (PROMETHEUS_MULTIPROC_DIR).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from .limits import Scope, loggable

access_log = logging.getLogger("tripletnet.service.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"


def configure_logging(access_log: bool) -> None:
    """The service's log lines on stderr; the access log at INFO, or silenced."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("tripletnet.service.access").setLevel(
        logging.INFO if access_log else logging.WARNING
    )


class Metrics:
    """The service's metrics in a registry of their own (several apps in one process are fine)."""

    def __init__(self, state: Callable[[], tuple[int, int]]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        shared = bool(os.environ.get(MULTIPROCESS))
        self.requests = Counter(
            "tripletnet_requests",
            "HTTP requests by method, route and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.seconds = Histogram(
            "tripletnet_request_seconds",
            "Time to answer a request, by method and route.",
            ("method", "route"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        mode: dict[str, Any] = {"multiprocess_mode": "mostrecent"} if shared else {}
        self.items = Gauge(
            "tripletnet_items", "Items in the index.", registry=self.registry, **mode
        )
        self.version = Gauge(
            "tripletnet_index_version", "The live index version.", registry=self.registry, **mode
        )
        self._state = state

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.seconds.labels(method, route).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        items, version = self._state()
        self.items.set(items)
        self.version.set(version)
        registry = self.registry
        if os.environ.get(MULTIPROCESS):  # every worker's counts, not just this one's
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST


def request_id(headers: dict[bytes, bytes]) -> str:
    given = headers.get(b"x-request-id", b"").decode("latin-1")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


class Observe:
    """ASGI middleware: request id header, one access-log line and the metrics per request."""

    def __init__(self, app: Any, metrics: Metrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(dict(scope.get("headers") or []))
        scope.setdefault("state", {})["request_id"] = rid
        start = time.perf_counter()
        status = 500  # what the client gets if nothing is sent

        async def tagged_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, tagged_send)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            access_log.info(
                "request_id=%s method=%s path=%s status=%d ms=%.1f",
                rid, loggable(scope["method"]), loggable(scope["path"]), status, seconds * 1000,
            )  # fmt: skip
            if self.metrics is not None:
                self.metrics.observe(scope["method"], route, status, seconds)
