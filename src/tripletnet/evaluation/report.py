"""Evaluate a run folder and write metrics.json, report.md and the figures.

Three protocols, chosen by the run's data:

- closed set (the papers'): test queries against the train gallery; the linear classifier and
  k-NN fit on the train embeddings, and the same on the raw inputs as a baseline row;
- open set (``--split classes:F``; Musgrave et al. 2020): the test classes were never trained
  on; retrieval (Recall@K, MAP@R, NMI) among the test samples, leave-one-out, beside the raw
  inputs; no classifier that needs the train classes;
- query/gallery (a split column with ``query`` and ``gallery``): the queries against the gallery.
"""

from __future__ import annotations

import platform
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import torch
from torch import nn

from ..collective import gathered, gathered_rows
from ..data import DatasetSplits, ImageFiles, LabelledArray
from ..devices import resolve_device
from ..errors import TripletnetError
from ..files import read_json
from ..progress import progress
from ..runs import COMMAND, HISTORY, MODEL, TrainedRun, load_run
from ..runs.data import Embedded, embed_split, load_data
from ..sampling import fixed_test_triplets
from ..text import plural
from ..world import SINGLE, World
from .baseline_cache import cached_row, data_identity
from .classify import knn_accuracy
from .embedding_cache import cached_embeddings, embeddings_key, file_digest
from .evaluate import (
    CONCURRENT_DEVICES,
    ONE_BLAS_THREAD,
    Evaluation,
    _submit,
    evaluate_embeddings,
    evaluate_shard,
)
from .probe import linear_probe_accuracy
from .report_files import cached_projections, draw_views, render_evaluation, write_evaluation
from .triplet_error import triplet_error
from .verification import (
    calibrate_threshold,
    load_threshold,
    pair_distances,
    sample_pairs,
    save_threshold,
)

RAW_BASELINE_LIMIT = 20_000  # image-file samples decoded for the raw-input row, at most
PART_NAMES = {  # what each protocol calls its queries and its gallery
    "closed set": ("test", "train"),
    "open set": ("test", "test"),
    "query/gallery": ("queries", "gallery"),
}


@dataclass
class Protocol:
    """Which samples are queries and which the gallery (None: leave-one-out on the queries)."""

    name: str  # "closed set", "open set" or "query/gallery"
    queries: LabelledArray
    gallery: LabelledArray | None
    fit_on: LabelledArray | None  # where the classifiers are fit (None: no classifier row)

    def parts(self) -> dict[str, LabelledArray]:
        """The splits that are embedded: the queries, and the gallery where there is one."""
        return {"queries": self.queries} | (
            {} if self.gallery is None else {"gallery": self.gallery}
        )

    @classmethod
    def of(cls, data: DatasetSplits) -> Protocol:
        if data.query is not None and data.gallery is not None:
            return cls("query/gallery", data.query, data.gallery, None)
        if data.open_set:
            return cls("open set", data.test, None, None)
        return cls("closed set", data.test, data.train, data.train)


@ONE_BLAS_THREAD
def evaluate_run(
    run_dir: str | Path,
    k: int | None = None,
    raw_baseline: bool = True,
    calibrate_far: float | None = None,
    calibrate_precision: float | None = None,
    tsne: bool = True,
    workers: int = 0,
    device: str = "auto",
    trust_model_code: bool | None = None,
    memory_mb: float | None = None,
    world: World = SINGLE,
) -> dict[str, Any] | None:
    """Embed the run's evaluation splits with its net and measure them (the protocol above):
    the test triplet error, every embedding metric (``evaluate_embeddings``) and a table of
    rows (the embedding, the raw inputs, a semi-supervised run's labelled samples). A
    calibration target writes threshold.json from training pairs; a saved threshold is then
    reported on the test pairs. Distances are the run's metric (cosine distance for cosine runs).

    Everything runs on ``device`` (``auto``: a GPU when there is one): the net, the k-NN search,
    the retrieval scores and the linear probes. The raw-input row is cached (``baseline_cache``),
    and so are the run's embeddings of each split (``embedding_cache``). ``trust_model_code``:
    as for ``load_run`` (a ``package.module:factory`` net). ``memory_mb``: the gallery's
    search reads it this many MiB at a time (``evaluate_shard``).

    Every process of a torchrun job (``world``) embeds its ``World.shard`` of each split; the
    queries are gathered, the gallery stays split (``evaluate_shard``), and rank 0 measures
    the rest and writes the report: the metrics of one process. The other ranks return None.
    """
    if world.distributed and (calibrate_far is not None or calibrate_precision is not None):
        raise TripletnetError(
            "--calibrate-far/--calibrate-precision need the whole gallery in one process: "
            "run them without torchrun"
        )
    on = resolve_device(device)
    run = load_run(run_dir, device=on, trust_model_code=trust_model_code)
    config, metric = run.config, run.spec.metric
    k = k or config.evaluation.k
    seed, pairs = config.optim.seed, config.evaluation.test_triplets
    data = load_data(config)
    protocol = Protocol.of(data)

    parts = protocol.parts()
    identities = {
        name: data_identity(part.x, part.y) for name, part in parts.items()
    }  # both caches
    weights = file_digest(run.path / MODEL)

    keys = {name: embeddings_key(weights, identities[name], on) for name in parts}
    shares = {name: world.shard(len(part)) for name, part in parts.items()}

    def embedded(name: str) -> Embedded:  # cached: the same weights, the same samples
        part, rows = parts[name], shares[name]
        key = keys[name]
        if world.distributed:  # this process's rows of the split
            part = part.take(np.arange(rows.start, rows.stop))
            key = embeddings_key(weights, f"{identities[name]} rows {rows.start}:{rows.stop}", on)
        return cached_embeddings(
            key, lambda: embed_split(run.model, part, run.prepare, device=on, workers=workers)
        )[0]

    stages = progress(
        total=4, desc="evaluating: embedding", unit="stage", show=None if world.main else False
    )
    queries = gathered_split(world, embedded("queries"), shares["queries"].start)
    gallery = embedded("gallery") if "gallery" in parts else None
    gallery_kept = None
    if gallery is not None:
        gallery_kept = gathered_rows(world, gallery.kept + shares["gallery"].start)
    labelled = _labelled(run, gallery, shares.get("gallery"), world)
    measures: dict[str, Any] = {
        "k": k,
        "pairs": pairs,
        "linear_probe": protocol.fit_on is not None,
        "seed": seed,
        "metric": metric,
        "device": on,
        "memory_mb": memory_mb,
        "world": world,
    }
    if not world.main:  # its share of the gallery's measures; rank 0 does the rest
        _measure_shard(queries, gallery, threshold=None, **measures)
        return None
    _next_stage(stages, "measuring")
    out = Path(run_dir)
    if calibrate_far is not None or calibrate_precision is not None:
        fitted = gallery if gallery is not None else queries
        pair_ids, same = sample_pairs(fitted.labels, pairs, seed)
        calibration = calibrate_threshold(
            pair_distances(fitted.embeddings, pair_ids, metric), same, calibrate_far,
            calibrate_precision,
        )  # fmt: skip
        split = "train" if protocol.name == "closed set" else "queries"
        save_threshold(out, {**calibration, "split": split, "metric": metric})
    saved = load_threshold(out)
    title = f"{config.data.dataset} {_title(protocol)} ({config.method_label})"
    history_path = out / HISTORY
    history = read_json(history_path) if history_path.is_file() else []

    def views(folder: Path) -> dict[str, Path]:  # the 2-D views (t-SNE: seconds; cached)
        projections = cached_projections(
            keys["queries"], queries.embeddings, queries.labels, metric, tsne
        )
        return draw_views(folder, title, projections, history, run.spec.class_names)

    # the figures that need no measure are drawn beside the measures, into a draft folder that
    # a refused evaluation leaves nothing of; matplotlib is not thread-safe: that thread alone
    # draws until it ends
    drafts = TemporaryDirectory(prefix=".figures-", dir=out)
    with drafts, ThreadPoolExecutor(1) as background:
        drawn = background.submit(views, Path(drafts.name))
        evaluation = _measure_shard(
            queries, gallery, threshold=saved["distance_threshold"] if saved else None, **measures
        )
        assert evaluation is not None
        figures = {name: path.replace(out / path.name) for name, path in drawn.result().items()}
    _next_stage(stages, "raw-input baseline")
    rows = {"embedding": _row(evaluation.metrics, queries.embeddings.shape[1], k, protocol)}
    if labelled is not None:  # few labels: 1-NN to the labelled samples
        rows["labelled"] = _classification(*labelled, queries, 1, on)
    if raw_baseline:
        measured, sample = _raw_sample(protocol, seed)
        if sample is not None:
            identities = {name: data_identity(p.x, p.y) for name, p in measured.parts().items()}
        rows["raw"] = _raw_row(run, measured, k, pairs, seed, on, identities)
        if sample is not None:
            rows["raw"] = {**rows["raw"], "sample": sample}
    _next_stage(stages, "writing the report")
    triplets = fixed_test_triplets(queries.labels, pairs, seed)
    unreadable = queries.unreadable + (gallery.unreadable if gallery is not None else [])
    metrics: dict[str, Any] = {
        "dataset": config.data.dataset,
        "method": config.method_label,
        "model": run.spec.architecture,
        "metric": metric,
        "protocol": protocol.name,
        "embedding_dim": int(queries.embeddings.shape[1]),
        "train_size": len(data.train),
        "test_size": len(queries.labels),
        "k": k,
        "seed": seed,
        "command": _command(out),
        "test_triplets": len(triplets),
        "test_triplet_error": triplet_error(queries.embeddings, triplets),
        "classification": rows,
        "unreadable_images": {
            "evaluation": len(unreadable),
            "examples": unreadable[:5],
            "training": int(history[-1].get("unreadable_images", 0)) if history else 0,
        },
        "training": {
            "epochs": len(history),
            "seconds": float(sum(row["seconds"] for row in history)),
            "final_loss": history[-1]["loss"] if history else None,
        },
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    metrics.update(evaluation.metrics)
    evaluation.metrics = metrics  # metrics.json keeps the run's keys and adds the new ones
    query_x = protocol.queries.x
    gallery_x = protocol.gallery.x if protocol.gallery is not None else query_x
    write_evaluation(
        out,
        evaluation,
        title,
        query_images=_rows_of(query_x, queries.kept),
        gallery_images=_rows_of(
            gallery_x, gallery_kept if gallery_kept is not None else queries.kept
        ),
        history=history,
        class_names=run.spec.class_names,
        tsne=tsne,
        render=render_report,
        views=figures,
    )
    stages.update()
    stages.close()
    return metrics


def _next_stage(stages: Any, name: str) -> None:
    stages.update()
    stages.set_description_str(f"evaluating: {name}")


def gathered_split(world: World, share: Embedded, start: int) -> Embedded:
    """Every process's share of a split (its rows from ``start`` on), whole on every process."""
    if not world.distributed:
        return share
    unreadable = [path for part in gathered(world, share.unreadable) for path in part]
    return Embedded(
        gathered_rows(world, share.embeddings),
        gathered_rows(world, share.labels),
        gathered_rows(world, share.kept + start),
        unreadable,
    )


def _labelled(
    run: TrainedRun, gallery: Embedded | None, rows: range | None, world: World
) -> tuple[np.ndarray, np.ndarray] | None:
    """The embeddings and labels of a semi-supervised run's labelled samples (None: not one),
    from every process's share of the gallery."""
    labelled = run.labelled()
    if labelled is None or gallery is None or rows is None:
        return None
    kept = gallery.kept + rows.start
    at = np.searchsorted(kept, labelled[np.isin(labelled, kept)])
    embeddings = gathered_rows(world, gallery.embeddings[at])
    return embeddings, gathered_rows(world, gallery.labels[at])


def _measure(queries: Embedded, gallery: Embedded | None, **options: Any) -> Evaluation:
    """``evaluate_embeddings`` of embedded queries against an embedded gallery (None: each
    query against the others)."""
    return evaluate_embeddings(
        queries.embeddings,
        queries.labels,
        gallery.embeddings if gallery is not None else None,
        gallery.labels if gallery is not None else None,
        **options,
    )


def _measure_shard(
    queries: Embedded, gallery: Embedded | None, **options: Any
) -> Evaluation | None:
    """``evaluate_shard``: ``_measure`` where the gallery is this process's share of it."""
    return evaluate_shard(
        queries.embeddings,
        queries.labels,
        gallery.embeddings if gallery is not None else None,
        gallery.labels if gallery is not None else None,
        **options,
    )


def _title(protocol: Protocol) -> str:
    return {
        "closed set": "test embeddings",
        "open set": "unseen classes",
        "query/gallery": "queries",
    }[protocol.name]


def _rows_of(x: Any, rows: np.ndarray) -> Any:
    """The readable samples (the rows kept), still lazy for image files."""
    if len(rows) == len(x):
        return x
    return x.subset(rows) if isinstance(x, ImageFiles) else x[rows]


def _row(metrics: dict[str, Any], dim: int, k: int, protocol: Protocol) -> dict[str, Any]:
    """The embedding's row of the result table, from the full evaluation."""
    retrieval, classifiers = metrics["retrieval"], metrics["classifiers"]
    row: dict[str, Any] = {
        "dim": dim,
        "recall_at_1": retrieval.get("recall_at_1"),
        "map_at_r": retrieval.get("map_at_r"),
        "nmi": metrics["clustering"]["nmi"],
        "knn_accuracy": classifiers["knn_majority_accuracy"],
        "k": classifiers["k"],
    }
    if protocol.fit_on is not None:
        row["linear_accuracy"] = classifiers["linear_probe_accuracy"]
    return row


def _raw_sample(protocol: Protocol, seed: int) -> tuple[Protocol, dict[str, Any] | None]:
    """The samples the raw-input row is measured on. It decodes every sample it uses: all of
    them for arrays and up to RAW_BASELINE_LIMIT image files; above that, a random sample
    (seeded by ``seed``) of each image-file part, in proportion to its size, RAW_BASELINE_LIMIT
    in all. Returns the protocol to measure, and None or what was sampled:
    ``{"seed": seed, "limit": ..., "queries": [taken, of], "gallery": [taken, of]}``."""
    parts = protocol.parts()
    files = sum(len(part) for part in parts.values() if isinstance(part.x, ImageFiles))
    if files <= RAW_BASELINE_LIMIT:
        return protocol, None
    rng = np.random.default_rng([seed, 20_000])
    sample: dict[str, Any] = {"seed": seed, "limit": RAW_BASELINE_LIMIT}
    taken: dict[str, LabelledArray] = {}
    for name, part in parts.items():
        size = len(part)
        if isinstance(part.x, ImageFiles):
            size = max(2, min(size, RAW_BASELINE_LIMIT * len(part) // files))
        rows = np.sort(rng.choice(len(part), size, replace=False))
        taken[name] = part if size == len(part) else part.take(rows)
        sample[name] = [size, len(part)]
    gallery = taken.get("gallery")
    fit_on = gallery if protocol.fit_on is not None else None
    return Protocol(protocol.name, taken["queries"], gallery, fit_on), sample


def raw_row_name(row: dict[str, Any], protocol: str) -> str:
    """The raw-input row's name in the result table, with the sample it was measured on."""
    sample = row.get("sample")
    if not sample:
        return "raw inputs (baseline)"
    names = PART_NAMES.get(protocol, ("queries", "gallery"))
    parts = [
        f"{sample[part][0]:,} of {sample[part][1]:,} {name}"
        for part, name in zip(("queries", "gallery"), names, strict=True)
        if part in sample
    ]
    return f"raw inputs (baseline; a random sample, seed {sample['seed']}: {', '.join(parts)})"


def _raw_row(
    run: TrainedRun,
    protocol: Protocol,
    k: int,
    pairs: int,
    seed: int,
    device: torch.device,
    identities: dict[str, str],
) -> dict[str, Any]:
    """The same measures on the normalised raw inputs (Euclidean), the baseline: computed once
    per dataset, protocol and options, then read from the cache (``baseline_cache``);
    ``identities``: ``data_identity`` of each of the protocol's parts."""
    options = {
        "protocol": protocol.name,
        "k": k,
        "pairs": pairs,
        "seed": seed,
        "normalizer": run.spec.normalizer.to_dict(),
        **identities,
    }
    return cached_row(options, lambda: _raw_measures(run, protocol, k, pairs, seed, device))[0]


def _raw_measures(
    run: TrainedRun, protocol: Protocol, k: int, pairs: int, seed: int, device: torch.device
) -> dict[str, Any]:
    def raw(part: LabelledArray) -> Embedded:
        return embed_split(nn.Flatten(), part, run.prepare)

    queries = raw(protocol.queries)
    gallery = raw(protocol.gallery) if protocol.gallery is not None else None
    dim = int(queries.embeddings.shape[1])
    if protocol.fit_on is not None and gallery is not None:
        return _classification(gallery.embeddings, gallery.labels, queries, k, device)
    evaluation = _measure(
        queries, gallery, k=k, pairs=pairs, linear_probe=False, seed=seed, device=device
    )
    return _row(evaluation.metrics, dim, k, protocol)


def _classification(
    train_x: np.ndarray, train_y: np.ndarray, test: Embedded, k: int, device: torch.device
) -> dict[str, Any]:
    """The linear probe's and k-NN's test accuracy; on the CPU and CUDA the k-NN search runs
    in a thread beside the probe (which holds one CPU thread: on MNIST's raw pixels the row in
    half the time of one after the other)."""
    beside = device.type in CONCURRENT_DEVICES
    with ThreadPoolExecutor(1) if beside else nullcontext() as background:
        knn = _submit(
            background, knn_accuracy, train_x, train_y, test.embeddings, test.labels, k,
            device=device,
        )  # fmt: skip
        linear = linear_probe_accuracy(
            train_x, train_y, test.embeddings, test.labels, device=device
        )
        return {
            "dim": int(np.prod(train_x.shape[1:])),
            "k": k,
            "linear_accuracy": linear,
            "knn_accuracy": knn.result(),
        }


def _command(run_dir: Path) -> str | None:
    """The command lines that trained the run (command.txt: the first, then each --resume),
    where they were recorded."""
    path = run_dir / COMMAND
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def result_table(metrics: dict[str, Any]) -> str:
    """A Markdown table: one row per feature set. Closed set: the classifiers' test accuracy;
    open set and query/gallery: Recall@1, MAP@R and NMI."""
    rows = metrics["classification"]
    protocol = metrics.get("protocol", "closed set")
    names = {"embedding": f"{metrics['method']} embedding"}
    names["raw"] = raw_row_name(rows.get("raw", {}), protocol)
    names["labelled"] = f"{metrics['method']} embedding, fit on the labelled samples only"
    if all("linear_accuracy" in row for row in rows.values()):
        lines = ["| features | dim | linear classifier | k-NN (test vs train) | k |"]
        lines.append("|---|---:|---:|---:|---:|")
        cells = [
            f"{row['linear_accuracy']:.2%} | {row['knn_accuracy']:.2%} | {row.get('k', metrics['k'])}"
            for row in rows.values()
        ]
    else:
        lines = ["| features | dim | Recall@1 | MAP@R | NMI |", "|---|---:|---:|---:|---:|"]
        cells = [
            f"{_percent(row.get('recall_at_1'))} | {_percent(row.get('map_at_r'))} | {row['nmi']:.4f}"
            for row in rows.values()
        ]
    for (key, row), cell in zip(rows.items(), cells, strict=True):
        lines.append(f"| {names.get(key, key)} | {row['dim']} | {cell} |")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def render_report(metrics: dict[str, Any]) -> str:
    training = metrics["training"]
    commands = (metrics.get("command") or "").splitlines()
    trained_by = (
        "\n\nTrained by " + ", then ".join(f"`{line}`" for line in commands) + "."
        if commands
        else ""
    )
    protocol = metrics.get("protocol", "closed set")
    setting = {
        "closed set": f"Test accuracy on {metrics['test_size']} samples; the classifiers are fit "
        f"on the {metrics['train_size']} training samples (the paper's protocol: a linear "
        "classifier on the train embeddings).",
        "open set": f"Open set: the {metrics['test_size']} test samples are of classes never "
        "trained on; retrieval among them, each query against all the others (Musgrave et al. "
        "2020). No classifier is fit on the training classes.",
        "query/gallery": f"{metrics['test_size']} queries against the gallery of the data's "
        "split column.",
    }[protocol]
    unreadable = metrics.get("unreadable_images", {})
    skipped = ""
    if unreadable.get("evaluation") or unreadable.get("training"):
        examples = ", ".join(unreadable.get("examples", []))
        skipped = (
            f"\n\nUnreadable images: {unreadable.get('training', 0)} replaced in training, "
            f"{unreadable.get('evaluation', 0)} left out of the evaluation"
            + (f" (e.g. {examples})" if examples else "")
            + "."
        )
    return f"""# tripletnet report: {metrics["dataset"]}, {metrics["method"]}

Model `{metrics["model"]}`, {metrics["embedding_dim"]}-d embedding compared by
{metrics.get("metric", "euclidean")} distance, trained {plural(training["epochs"], "epoch")}
in {training["seconds"]:.1f} s with seed {metrics.get("seed", "?")}. {setting}{trained_by}{skipped}

{result_table(metrics)}

Test triplet error: **{metrics["test_triplet_error"]:.2%}** on {metrics["test_triplets"]} fixed test
triplets (a triplet is an error when d(anchor, positive) >= d(anchor, negative)).

{render_evaluation(metrics, _setting_title(protocol))}
Machine: {metrics["machine"]["platform"]}, torch {metrics["machine"]["torch"]},
{metrics["machine"]["threads"]} threads.
"""


def _setting_title(protocol: str) -> str:
    return {
        "closed set": "test queries, train gallery",
        "open set": "unseen classes, leave-one-out",
        "query/gallery": "queries, gallery",
    }[protocol]
