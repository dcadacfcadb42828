"""Exact vs HNSW vs IVF-PQ (plain and re-ranked) search on clustered synthetic vectors: build
time, memory, QPS, recall.

    OMP_NUM_THREADS=2 python bench/search.py                 # 1,000,000 x 128, 1,000 queries
    python bench/search.py --n 100000 --queries 500           # a quicker look
    python bench/search.py --kinds exact ivfpq-refine         # the re-ranking goal only

The data are NOT uniform noise (on which every approximate index looks bad and no embedding
looks like): ``--clusters`` blobs with random centres and per-cluster spreads, the shape a
trained embedding of many classes has. Each blob is a Gaussian in its own random
``--intrinsic-dim``-dimensional subspace plus isotropic noise of ``--noise`` times its spread:
embeddings are low-dimensional manifolds in R^D. ``--intrinsic-dim 0`` makes every blob a full
D-dimensional Gaussian, a much harder case (within a blob, neighbours are nearly equidistant).
Queries are fresh draws from the same blobs.
Recall@10 is |approximate top-10 ∩ exact top-10| / 10, averaged over the queries; QPS is the
number of queries over the wall time of one batched ``search`` call (same threads for all kinds).
Every index is built and saved to a temporary folder in one forked process, then loaded and
searched in a fresh one, as ``tripletnet serve`` serves it. Memory is the growth of that
process's resident set from before the load to after each setting's searches (vectors, graph
or codes, plus the per-item metadata of tripletnet's SearchIndex), split into private memory
(anonymous pages) and pages of mapped files (RssFile + RssShmem: the page cache a memory-mapped
index has touched); "total MB" counts both, every resident page, and "mem x" divides it by the
exact index's. A fresh process per load means no memory freed earlier is reused unseen.
``ivfpq-refine-STORE`` keeps the vectors beside the PQ codes (``--refine-store``: sq8, float16
or float32) and re-ranks ``refine`` x k candidates by their distance to those; it is loaded
memory-mapped, as ``serve --mmap`` does (codes and stored vectors read on demand); the others
are read into memory.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from tripletnet.search import SearchIndex


def rss_mb() -> tuple[float, float]:
    """(private, mapped) resident memory in MB, from /proc/self/status: anonymous pages, and
    pages of mapped files (RssFile, plus RssShmem for files on a tmpfs such as /tmp)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    kb = {name: int(fields[name].split()[0]) for name in ("RssAnon", "RssFile", "RssShmem")}
    return kb["RssAnon"] / 1024, (kb["RssFile"] + kb["RssShmem"]) / 1024


@dataclass
class Blobs:
    """Cluster centres, a spread per cluster and, per cluster, an orthonormal basis (or None)."""

    centres: np.ndarray
    spread: np.ndarray
    bases: np.ndarray | None
    noise: float

    @classmethod
    def random(cls, clusters: int, dim: int, intrinsic: int, noise: float) -> Blobs:
        rng = np.random.default_rng(0)
        centres = rng.normal(0.0, 1.0, (clusters, dim)).astype(np.float32)
        spread = rng.uniform(0.1, 0.4, clusters).astype(np.float32)
        bases = None
        if intrinsic:
            gaussian = rng.standard_normal((clusters, dim, intrinsic), dtype=np.float32)
            bases = np.linalg.qr(gaussian)[0] * np.sqrt(dim / intrinsic, dtype=np.float32)
        return cls(centres, spread, bases, noise)

    def draw(self, n: int, seed: int) -> np.ndarray:
        """``n`` points, made in chunks (no float64 copy of the whole set)."""
        rng = np.random.default_rng(seed)
        dim = self.centres.shape[1]
        out = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, 100_000):
            which = rng.integers(0, len(self.centres), min(100_000, n - start))
            if self.bases is None:
                offset = rng.standard_normal((len(which), dim), dtype=np.float32)
            else:
                local = rng.standard_normal((len(which), self.bases.shape[2]), dtype=np.float32)
                offset = np.einsum("nij,nj->ni", self.bases[which], local)
                offset += self.noise * rng.standard_normal((len(which), dim), dtype=np.float32)
            out[start : start + len(which)] = (
                self.centres[which] + offset * self.spread[which, None]
            )
        return out


def top_ids(index: SearchIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    hits = index.search(queries, k)
    seconds = time.perf_counter() - start
    return np.array([[h.item.id for h in row] for row in hits]), seconds


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--intrinsic-dim", type=int, default=16, help="0: full-D blobs")
    parser.add_argument("--noise", type=float, default=0.1, help="off-subspace noise / spread")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--pq-m", type=int, default=32)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--refine", type=int, nargs="+", default=[6, 8], help="ivfpq-refine")
    parser.add_argument(
        "--refine-store",
        nargs="+",
        default=["sq8"],
        choices=["sq8", "float16", "float32"],
        help="ivfpq-refine: how the re-ranking vectors are kept (one build each)",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=["exact", "hnsw", "ivfpq", "ivfpq-refine"],
        choices=["exact", "hnsw", "ivfpq", "ivfpq-refine"],
        help="exact always runs first: it is the reference",
    )
    args = parser.parse_args()

    shape = f"{args.intrinsic_dim}-d + noise {args.noise}" if args.intrinsic_dim else "full-D"
    print(f"data: {args.n:,} x {args.dim} in {args.clusters} blobs ({shape}), {args.queries} queries, "
          f"k={args.k}, faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")  # fmt: skip
    blobs = Blobs.random(args.clusters, args.dim, args.intrinsic_dim, args.noise)
    vectors = blobs.draw(args.n, seed=1)
    queries = blobs.draw(args.queries, seed=2)
    kinds = [
        ("exact", {}, [{}]),
        ("hnsw", {"M": args.hnsw_m, "ef_construction": args.ef_construction},
         [{"ef_search": ef} for ef in args.ef_search]),
        ("ivfpq", {"nlist": args.nlist, "m": args.pq_m, "nbits": 8},
         [{"nprobe": p} for p in args.nprobe]),
        *((f"ivfpq-refine-{store}", {"nlist": args.nlist, "m": args.pq_m, "nbits": 8, "refine": 1},
           [{"nprobe": p, "refine": r} for p in args.nprobe for r in args.refine])
          for store in args.refine_store),
    ]  # fmt: skip
    chosen = {"exact", *args.kinds}
    truth: np.ndarray | None = None
    exact_qps = exact_memory = 0.0
    print(f"{'kind':<20} {'setting':<18} {'build s':>8} {'private MB':>10} {'mapped MB':>9} "
          f"{'total MB':>8} {'mem x':>6} {'QPS':>8} {'x exact':>8} {'recall@10':>9}")  # fmt: skip
    DATA.update(vectors=vectors, queries=queries)  # forked children inherit them
    for kind, build_params, settings in kinds:
        if ("ivfpq-refine" if kind.startswith("ivfpq-refine") else kind) not in chosen:
            continue
        store = kind.split("-")[2] if kind.startswith("ivfpq-refine-") else "sq8"
        with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
            build = in_child(build_and_save, kind.split("-")[0], build_params, store, folder)
            mmap = kind.startswith("ivfpq-refine")  # served from disk, as serve --mmap does
            for setting, found, seconds, private, mapped in in_child(
                load_and_search, folder, mmap, settings, args.k
            ):
                qps = len(queries) / seconds
                if truth is None:
                    truth, exact_qps = found, qps
                total = private + mapped  # every resident page loading and searching added
                exact_memory = exact_memory or total
                name = ",".join(f"{key}={value}" for key, value in setting.items()) or "-"
                print(f"{kind:<20} {name:<18} {build:>8.1f} {private:>10.0f} {mapped:>9.0f} "
                      f"{total:>8.0f} {total / exact_memory:>6.2f} {qps:>8.0f} "
                      f"{qps / exact_qps:>8.1f} {recall(found, truth):>9.3f}", flush=True)  # fmt: skip


DATA: dict[str, np.ndarray] = {}  # the vectors and queries, set before any child is forked


def in_child(work: Any, *args: Any) -> Any:
    """``work(*args)`` in a forked process: a fresh heap, so memory freed by earlier work
    (another kind, or the build) is not reused and hidden from the resident-set growth."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(work, args)


def build_and_save(kind: str, params: dict[str, int], store: str, folder: str) -> float:
    """Build time in seconds (the save is not counted)."""
    start = time.perf_counter()
    index = SearchIndex(DATA["vectors"].shape[1], kind, params=params, refine_store=store)
    index.add(DATA["vectors"])
    seconds = time.perf_counter() - start
    index.save(folder)
    return seconds


def load_and_search(
    folder: str, mmap: bool, settings: list[dict[str, int]], k: int
) -> list[tuple[dict[str, int], np.ndarray, float, float, float]]:
    """Per setting: the found ids, the search's seconds and the (private, mapped) MB that
    loading the index and every search so far added to the resident set."""
    gc.collect()
    before = rss_mb()
    index = SearchIndex.load(folder, mmap=mmap)
    out = []
    for setting in settings:
        if setting:
            index.set_search_params(**setting)
        found, seconds = top_ids(index, DATA["queries"], k)
        private, mapped = (now - then for now, then in zip(rss_mb(), before, strict=True))
        out.append((setting, found, seconds, private, mapped))
    return out


if __name__ == "__main__":
    main()
