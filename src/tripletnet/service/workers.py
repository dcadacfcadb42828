"""``serve --workers N``: N processes, each with its own listening socket (SO_REUSEPORT).

uvicorn's own workers share one listening socket, and the first worker to wake accepts every
connection waiting: keep-alive clients that connect at once mostly end up on one worker
while the others idle (measured with 32 clients: 16 CPU s against 3). With SO_REUSEPORT the
kernel spreads new connections over the workers' sockets by their addresses, so each worker
gets its share. Where the system has no SO_REUSEPORT, uvicorn's workers are used.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
from multiprocessing.connection import wait
from types import FrameType

from ..errors import TripletnetError

STOP_SECONDS = 20  # a worker's graceful shutdown before it is killed


def spread_by_kernel() -> bool:
    """Whether this system can give each worker its own socket on one port."""
    return hasattr(socket, "SO_REUSEPORT")


def _socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(info[4])
    except OSError as error:
        sock.close()
        raise TripletnetError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


def _worker(app: str, host: str, port: int) -> None:
    import sys

    import uvicorn

    try:
        sock = _socket(host, port, reuse_port=True)
    except TripletnetError as error:  # the port taken since the probe: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    config = uvicorn.Config(app, factory=True, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def serve(app: str, host: str, port: int, workers: int) -> None:
    """Run ``workers`` processes serving the app factory ``app`` ("module:function") on
    host:port until SIGINT or SIGTERM, or until one of them stops (an error)."""
    probe = _socket(host, port, reuse_port=False)  # refused where anything else listens there
    port = probe.getsockname()[1]
    probe.close()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(app, host, port)) for _ in range(workers)]
    stopping: list[int] = []

    def stop(number: int, frame: FrameType | None) -> None:
        stopping.append(number)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            process.start()
        while not stopping and all(process.is_alive() for process in processes):
            wait([process.sentinel for process in processes], timeout=0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process in processes:
            process.join(STOP_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
    if not stopping:
        codes = [process.exitcode for process in processes]
        raise TripletnetError(f"a worker process stopped (exit codes {codes}); the service stopped")
