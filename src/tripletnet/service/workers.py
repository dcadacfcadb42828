"""``serve --workers N``: N processes, each with its own listening socket (SO_REUSEPORT).

uvicorn's own workers share one listening socket, and the first worker to wake accepts every
connection waiting: keep-alive clients that connect at once mostly end up on one worker
while the others idle (measured with 32 clients: 16 CPU s against 3). With SO_REUSEPORT the
kernel spreads new connections over the workers' sockets by their addresses, so each worker
gets its share. Where the system has no SO_REUSEPORT, uvicorn's workers are used.

Supervision: a worker that dies (a crash, kill -9) is started again, with one log line; one
that cannot start (exit code 2: the port taken) or that keeps dying (more than RESTARTS times
in RESTART_WINDOW seconds) stops the service. Workers die with the parent: on Linux the kernel
sends each one SIGTERM when the parent dies, even by SIGKILL (prctl PR_SET_PDEATHSIG), and
every worker also checks once a second that its parent is still the one that started it, so
no orphan keeps the port or takes writes. SIGTERM or SIGINT to the parent stops the workers
with SIGTERM: uvicorn closes the listening sockets, finishes the requests in flight (at most
STOP_SECONDS) and exits; the parent then exits 0.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.connection import wait
from types import FrameType
from typing import Any

from ..errors import TripletnetError

STOP_SECONDS = 20  # a worker's graceful shutdown before it is killed
RESTARTS = 5  # restarts allowed within RESTART_WINDOW seconds
RESTART_WINDOW = 60.0
CANNOT_START = 2  # a worker's exit code where it could not listen: restarting cannot help
PR_SET_PDEATHSIG = 1  # linux/prctl.h

log = logging.getLogger("tripletnet.service")


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


def die_with_parent(parent: int) -> None:
    """Have this process get SIGTERM when ``parent`` dies: the kernel's parent-death signal on
    Linux, and a thread that checks the parent pid once a second (any system; it also covers a
    parent that died before the signal was asked for)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the thread alone
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful stop

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker(app: str, host: str, port: int, parent: int | None = None) -> None:
    import uvicorn

    if parent is not None:
        die_with_parent(parent)
    try:
        sock = _socket(host, port, reuse_port=True)
    except TripletnetError as error:  # the port taken since the probe: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(CANNOT_START) from None
    config = uvicorn.Config(
        app,
        factory=True,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=STOP_SECONDS,
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve(app: str, host: str, port: int, workers: int) -> None:
    """Run ``workers`` processes serving the app factory ``app`` ("module:function") on
    host:port until SIGINT or SIGTERM (then return), restarting a worker that dies; an error
    where a worker cannot start or keeps dying."""
    probe = _socket(host, port, reuse_port=False)  # refused where anything else listens there
    port = probe.getsockname()[1]
    probe.close()
    context: Any = multiprocessing.get_context("spawn")
    me = os.getpid()

    def start(slot: int) -> Any:
        process = context.Process(
            target=_worker, args=(app, host, port, me), name=f"tripletnet-worker-{slot}"
        )
        process.start()
        return process

    processes: list[Any] = []
    stopping: list[int] = []
    failed: str | None = None
    restarts: collections.deque[float] = collections.deque()

    def stop(number: int, frame: FrameType | None) -> None:
        stopping.append(number)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        processes.extend(start(slot) for slot in range(workers))
        while not stopping and failed is None:
            wait([process.sentinel for process in processes], timeout=0.5)
            for slot, process in enumerate(processes):
                if stopping or process.is_alive():
                    continue
                now = time.monotonic()
                restarts.append(now)
                while restarts[0] < now - RESTART_WINDOW:
                    restarts.popleft()
                code = process.exitcode
                if code == CANNOT_START or len(restarts) > RESTARTS:
                    codes = [p.exitcode for p in processes]
                    failed = f"a worker process stopped (exit codes {codes})"
                    break
                processes[slot] = start(slot)
                log.warning(
                    "worker %d (pid %s) stopped with exit code %s; restarted it as pid %s",
                    slot,
                    process.pid,
                    code,
                    processes[slot].pid,
                )
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
    if failed is not None and not stopping:
        raise TripletnetError(f"{failed}; the service stopped")
