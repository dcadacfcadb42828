"""FAISS vs Milvus Lite on the same N x 128 vectors: build time, queries per second, recall@10
of each index kind against exact search, and peak memory.

    python bench/engines.py --n 100000            # default N: 1,000,000

A run that has not answered within --timeout seconds is stopped and its row says so; Milvus
Lite, which searches exhaustively in Python, answers --milvus-queries queries (default 20).

Each (engine, kind) runs in its own process (so that its peak resident memory, from
resource.getrusage, is its own); the exact answers come from faiss.knn in the parent. The
vectors are Gaussian (seed 0), Euclidean; queries: 1,000 others (--queries), searched in one batch, k=10.
FAISS runs as the ``faiss`` engine's in-memory index (no folder); Milvus Lite as the ``milvus``
engine's collection in a temporary .db, inside the child process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 128
QUERIES = 1000
K = 10
RUNS = [
    ("faiss", "exact"),
    ("faiss", "hnsw"),
    ("faiss", "ivfpq"),
    ("milvus", "exact"),
    ("milvus", "ivfflat"),
    ("milvus", "hnsw"),
    ("milvus", "ivfpq"),
]


def data(n: int, queries: int = QUERIES) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(n, DIM)).astype(np.float32),
        rng.normal(size=(queries, DIM)).astype(np.float32),
    )


def child(engine: str, kind: str, n: int, count: int, truth_file: str) -> dict[str, object]:
    vectors, queries = data(n, count)
    truth = np.load(truth_file)[:count]  # the first ``count`` queries' exact answers
    started = time.perf_counter()
    if engine == "faiss":
        from tripletnet.search.index import MemoryIndex

        index: object = MemoryIndex(DIM, kind)
        index.add(vectors)  # type: ignore[attr-defined]
        folder = None
    else:
        from tripletnet.search.engines.milvus import MilvusIndex, connect

        folder = tempfile.TemporaryDirectory(prefix="bench-milvus-")
        client = connect(str(Path(folder.name) / "bench.db"))
        index = MilvusIndex.create(client, "bench", DIM, kind, "euclidean", None, count=n)
        index.add(vectors)
        client.load_collection("bench")  # builds the index where Milvus defers it
    built = time.perf_counter() - started
    index.search(queries[:10], K)  # type: ignore[attr-defined]
    started = time.perf_counter()
    hits = index.search(queries, K)  # type: ignore[attr-defined]
    searched = time.perf_counter() - started
    found = [{h.item.id for h in row} for row in hits]
    recall = float(
        np.mean([len(f & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)])
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if folder is not None:
        folder.cleanup()
    return {
        "engine": engine,
        "kind": kind,
        "build_s": round(built, 1),
        "qps": round(count / searched, 1),
        "recall@10": round(recall, 3),
        "peak_mb": round(peak_mb),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors to index")
    parser.add_argument("--queries", type=int, default=QUERIES, help="query vectors")
    parser.add_argument("--only", nargs="*", help="ENGINE:KIND runs (default: all)")
    parser.add_argument(
        "--milvus-queries", type=int, default=20, help="queries for the Milvus Lite runs"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds a run may take, at most"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, kind = args.child.split(":")
        print(json.dumps(child(engine, kind, args.n, args.queries, args.truth)))
        return
    import faiss

    vectors, queries = data(args.n, args.queries)
    _, truth = faiss.knn(queries, vectors, K)
    del vectors
    runs = [tuple(r.split(":")) for r in args.only] if args.only else RUNS
    print(f"N={args.n:,} x {DIM}, {args.queries} queries, k={K}")
    print(
        f"{'engine':<7} {'kind':<8} {'build s':>8} {'queries/s':>10} {'recall@10':>10} {'peak MB':>8}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        np.save(Path(scratch) / "truth.npy", truth)
        for engine, kind in runs:
            count = args.queries if engine == "faiss" else min(args.queries, args.milvus_queries)
            command = [sys.executable, __file__, "--n", str(args.n), "--queries", str(count),
                       "--child", f"{engine}:{kind}",
                       "--truth", str(Path(scratch) / "truth.npy")]  # fmt: skip
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(f"{engine:<7} {kind:<8} stopped: no answer within {args.timeout:g} s")
                continue
            if done.returncode:
                print(f"{engine:<7} {kind:<8} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{r['engine']:<7} {r['kind']:<8} {r['build_s']:>8} {r['qps']:>10} "
                f"{r['recall@10']:>10} {r['peak_mb']:>8}",
                flush=True,
            )


if __name__ == "__main__":
    main()
