"""Load test of ``tripletnet serve``: concurrent clients against a large index on 127.0.0.1.

    OMP_NUM_THREADS=1 python bench/load.py                   # 32 clients, 30 s, 100,000 items
    OMP_NUM_THREADS=1 python bench/load.py --workers 2       # two server processes
    python bench/load.py --clients 8 --seconds 5 --items 10000   # a quicker look

It trains a tiny digits run (seconds), fills an exact index with ``--items`` vectors (the run's
embeddings of the 1,797 digits, then jittered copies of them up to the count), starts the
server as a subprocess on a free port of 127.0.0.1 and lets ``--clients`` clients send requests
back to back for ``--seconds``, each over one keep-alive connection with requests prepared
before the clock starts (a lean client: the load generator shares the machine's cores with
the server, and httpx's 2.5 ms of CPU a request would be taken from the server's workers):
image searches (a digit PNG upload), vector searches (JSON) and, one request in
``--add-every``, an added item (which the server logs to disk at once). It
prints the status codes seen (the target is zero 5xx), throughput and p50/p99 latency per kind.
The server requires a token for writes (the clients send it); afterwards ``--unauthorised``
writes (adds and removals, without a token or with a wrong one) must all be refused with 401
or 403 and leave the index as it was (count and live version, in the service and on disk).
Every request has a timeout and the server is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from tripletnet.data import load_dataset
from tripletnet.search import Embedder, SearchIndex
from tripletnet.training import TrainConfig, train


def build_index(folder: Path, items: int) -> tuple[Path, Path, np.ndarray]:
    """A tiny trained run and a saved ``items``-vector index of it; returns the digit images."""
    run_dir = folder / "run"
    config = TrainConfig(dataset="digits", epochs=1, triplets_per_epoch=2048, embedding_dim=64)
    train(config, run_dir, show_progress=False)
    embedder = Embedder.from_run(run_dir)
    digits = load_dataset("digits")
    images = np.concatenate([digits.train.x, digits.test.x])
    labels = np.concatenate([digits.train.y, digits.test.y])
    base = embedder.embed_samples(images)
    rng = np.random.default_rng(0)
    rows = np.arange(items) % len(base)
    spread = 0.05 * float(base.std())
    vectors = base[rows] + rng.normal(0, spread, (items, base.shape[1])).astype(np.float32)
    vectors[: len(base)] = base[: min(items, len(base))]
    index = SearchIndex(embedder.dim, "exact", model=embedder.ref)
    index.class_names = digits.class_names
    index.add(vectors, labels=labels[rows], sources=[f"load:{row}" for row in range(items)])
    index.save(folder / "index")
    return run_dir, folder / "index", images


def png(sample: np.ndarray) -> bytes:
    pixels = np.clip(sample.reshape(8, 8) * (255 / 16), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((64, 64)).save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    run_dir: Path, index_dir: Path, port: int, token_file: Path, workers: int
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tripletnet", "serve", str(run_dir), "--index",
               str(index_dir), "--host", "127.0.0.1", "--port", str(port), "--token-file",
               str(token_file), "--workers", str(workers), "--no-access-log"]  # fmt: skip
    server = subprocess.Popen(command, env=os.environ.copy())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not answer /health within 120 s")


class Tally:
    """Status codes and latencies per kind of request."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()
        self.sent = 0
        self.seconds: defaultdict[str, list[float]] = defaultdict(list)

    def record(self, kind: str, code: str, seconds: float) -> None:
        self.codes[code] += 1
        self.seconds[kind].append(seconds)


def prepared(path: str, body: bytes, content_type: str, token: str | None = None) -> bytes:
    """A whole HTTP/1.1 POST request, encoded once and sent as is."""
    head = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
    ]
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def multipart(picture: bytes) -> tuple[bytes, str]:
    """An image-search form (``image`` and ``k``) and its content type."""
    fence = "tripletnetloadbench"
    body = (
        f'--{fence}\r\nContent-Disposition: form-data; name="k"\r\n\r\n10\r\n'
        f'--{fence}\r\nContent-Disposition: form-data; name="image"; filename="digit.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return (
        body + picture + f"\r\n--{fence}--\r\n".encode(),
        f"multipart/form-data; boundary={fence}",
    )


class Requests:
    """Each client's requests, prepared before the clock starts: pools of vector searches, adds
    and image searches, so that sending one costs the client almost no CPU."""

    def __init__(self, number: int, pngs: list[bytes], dim: int, token: str) -> None:
        rng = np.random.default_rng(number)
        vectors = [rng.normal(0, 1, dim).tolist() for _ in range(64)]
        self.search = [
            prepared("/search", json.dumps({"vector": v, "k": 10}).encode(), "application/json")
            for v in vectors
        ]
        self.add = [
            prepared("/items", json.dumps({"vector": v, "label": 0}).encode(), "application/json",
                     token)
            for v in vectors
        ]  # fmt: skip
        self.image = [prepared("/search", *multipart(picture)) for picture in pngs]
        self.rng = rng

    def pick(self, sent: int, add_every: int) -> tuple[str, bytes]:
        if sent % add_every == 0:
            return "add", self.add[int(self.rng.integers(len(self.add)))]
        if sent % 2:
            return "image search", self.image[int(self.rng.integers(len(self.image)))]
        return "vector search", self.search[int(self.rng.integers(len(self.search)))]


class Connection:
    """One keep-alive HTTP/1.1 connection to the server that sends prepared requests and reads
    the status and the Content-Length body of each answer. A lean client: httpx spends about
    2.5 ms of CPU a request, which on a 2-core machine is CPU the server's workers lose."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, request: bytes) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        writer.write(request)
        status = int((await reader.readline()).split()[1])
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise ValueError("a chunked answer; the lean client reads Content-Length only")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def client(
    number: int, port: int, pngs: list[bytes], dim: int, args: argparse.Namespace, tally: Tally
) -> None:
    requests = Requests(number, pngs, dim, args.token)
    connection = Connection(port)
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            tally.sent += 1  # counted over all clients: one request in add_every is an add
            kind, request = requests.pick(tally.sent, args.add_every)
            start = time.perf_counter()
            try:
                code = str(await asyncio.wait_for(connection.send(request), args.timeout))
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError,
                    asyncio.TimeoutError) as error:  # fmt: skip
                code = type(error).__name__
                connection.close()
            tally.record(kind, code, time.perf_counter() - start)
    finally:
        connection.close()


def report(tally: Tally, seconds: float) -> None:
    total = sum(tally.codes.values())
    errors = sum(n for code, n in tally.codes.items() if not code.startswith(("2", "4")))
    print(f"status codes: {dict(sorted(tally.codes.items()))}")
    print(f"5xx or transport errors: {errors}")
    print(f"throughput: {total / seconds:.1f} requests/s ({total} in {seconds:.1f} s)")
    print(f"{'kind':<14} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}")
    everything = [s for values in tally.seconds.values() for s in values]
    for kind, values in [*sorted(tally.seconds.items()), ("all", everything)]:
        p50, p99 = np.percentile(np.array(values) * 1000, [50, 99])
        print(f"{kind:<14} {len(values):>7} {p50:>8.1f} {p99:>8.1f}")


async def hammer(port: int, pngs: list[bytes], dim: int, args: argparse.Namespace) -> None:
    tally = Tally()
    start = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(client(n, port, pngs, dim, args, tally) for n in range(args.clients))),
        timeout=args.seconds + 2 * args.timeout,
    )
    report(tally, time.perf_counter() - start)


async def unauthorised(base: str, dim: int, count: int, index_dir: Path) -> None:
    """``count`` writes without the token or with a wrong one: all 401/403, nothing changed."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        before = (await http.get("/health")).json()
        on_disk = len(SearchIndex.load(index_dir))
        headers = [{}, {"Authorization": "Bearer " + secrets.token_urlsafe(32)},
                   {"Authorization": "Basic x"}]  # fmt: skip
        codes: Counter[int] = Counter()
        for n in range(count):
            header = headers[n % len(headers)]
            if n % 2:
                answer = await http.delete(f"/items/{n}", headers=header)
            else:
                answer = await http.post("/items", json={"vector": [0.1] * dim}, headers=header)
            codes[answer.status_code] += 1
        after = (await http.get("/health")).json()
    unchanged = (before["count"], before["version"]) == (after["count"], after["version"])
    unchanged = unchanged and len(SearchIndex.load(index_dir)) == on_disk
    print(f"{count} unauthorised writes: status codes {dict(sorted(codes.items()))}; "
          f"all 401/403: {set(codes) <= {401, 403}}; index unchanged: {unchanged} "
          f"({after['count']:,} items, version {after['version']})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--add-every", type=int, default=50, help="one request in N adds an item")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--unauthorised", type=int, default=1000, help="refused writes to try")
    args = parser.parse_args()
    args.token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="tripletnet-load-") as tmp:
        start = time.perf_counter()
        run_dir, index_dir, images = build_index(Path(tmp), args.items)
        print(f"index of {args.items:,} items (64-d, exact) built in "
              f"{time.perf_counter() - start:.1f} s; {args.clients} clients for {args.seconds:.0f} s, "
              f"one request in {args.add_every} adds an item")  # fmt: skip
        token_file = Path(tmp) / "token"
        token_file.write_text(args.token)
        port = free_port()
        server = start_server(run_dir, index_dir, port, token_file, args.workers)
        print(f"server: {args.workers} worker process(es), writes need a token")
        try:
            pngs = [png(sample) for sample in images[:200]]
            base = f"http://127.0.0.1:{port}"
            asyncio.run(hammer(port, pngs, 64, args))
            asyncio.run(unauthorised(base, 64, args.unauthorised, index_dir))
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
