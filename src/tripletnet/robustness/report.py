"""``tripletnet robustness``: a run measured under common corruptions, perturbation sequences
and adversarial attacks; robustness.json, robustness.md and the figures.

Corrupted, perturbed or attacked queries are searched against the clean gallery (the realistic
search case; ``measure``). The mCE is normalised by the raw-pixel k-NN (default) or by another
run's k-NN (``baseline``), on the very same corrupted images (``mce``).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..devices import resolve_device
from ..evaluation.classify import vote
from ..evaluation.neighbours import knn_search
from ..files import write_json_atomic, write_text_atomic
from ..progress import progress
from ..runs import load_run
from ..runs.data import load_data
from .attacks import NORMS, attack
from .corruptions import SEVERITIES, catalogue, corrupt
from .figures import plot_curves, plot_query_grid
from .markdown import render
from .mce import corruption_errors
from .measure import (
    Embedder,
    Gallery,
    RobustnessError,
    gallery_of,
    pixels,
    sample_rows,
    split_parts,
)
from .perturbations import measure_sequences
from .targets import centroid_loss, class_centroids, neighbour_loss

JSON, MARKDOWN = "robustness.json", "robustness.md"
PARTS = ("corruptions", "stability", "adversarial")
ATTACK_TARGETS = ("knn", "retrieval")  # the centroid-softmax surrogate; the neighbour push
CHUNK = 256


@dataclass
class Settings:
    """What the report measures, and on how many samples."""

    k: int | None = None
    queries: int = 1000
    gallery: int = 10_000
    attack_queries: int = 500
    stability_queries: int = 300
    frames: int = 10
    eps: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.25, 0.3)
    norm: str = "linf"
    pgd_steps: int = 10
    corruptions: Sequence[str] | None = None  # None: the catalogue for the images' channels
    parts: Sequence[str] = PARTS
    seed: int = 0
    device: str = "cpu"
    examples: int = 4
    timings: dict[str, float] = field(default_factory=dict)

    def check(self) -> None:
        if self.norm not in NORMS:
            raise RobustnessError(f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        bad = [e for e in self.eps if not (np.isfinite(e) and e >= 0)]
        if bad or not self.eps:
            raise RobustnessError(f"--eps needs finite values >= 0, got {list(self.eps)}")
        unknown = sorted(set(self.parts) - set(PARTS))
        if unknown:
            raise RobustnessError(f"unknown part(s) {', '.join(unknown)}; choose from {PARTS}")


class Model:
    """One model's view of the shared queries: its embedder and its clean gallery."""

    def __init__(self, embed: Callable[[torch.Tensor], np.ndarray], gallery: Gallery) -> None:
        self.embed, self.gallery = embed, gallery

    def measure(self, x: torch.Tensor, labels: np.ndarray) -> dict[str, float]:
        return self.gallery.measure(self.embed(x), labels)


def robustness_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    baseline: str | Path | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Measure ``run_dir`` (see the module's docstring) and write the report into ``out``
    (default: ``RUN_DIR/robustness``). Returns what robustness.json holds."""
    s = settings or Settings()
    s.check()
    started = time.perf_counter()
    run = load_run(run_dir)
    device = resolve_device(s.device)
    embedder = Embedder(run, device)
    k = s.k or run.config.evaluation.k
    data = load_data(run.config)
    query_part, gallery_part = split_parts(data, s.seed)
    g_px = pixels(gallery_part, sample_rows(gallery_part.y, s.gallery, s.seed), embedder.top)
    q_px = pixels(query_part, sample_rows(query_part.y, s.queries, s.seed + 1), embedder.top)
    if k > len(g_px.y):
        raise RobustnessError(f"-k {k} is larger than the gallery's {len(g_px.y)} samples")
    names = list(s.corruptions or catalogue(q_px.x.shape[1]))
    unknown = sorted(set(names) - set(catalogue(1)) - set(catalogue(3)))
    if unknown:
        raise RobustnessError(f"unknown corruption(s): {', '.join(unknown)}")
    model = Model(embedder.embed, gallery_of(embedder.embed(g_px.x), g_px.y, k, probe=True))
    base, base_name = _baseline(baseline, g_px, k, device, run.spec.input_shape)
    s.timings["setup"] = time.perf_counter() - started
    report: dict[str, Any] = {
        "run": str(run_dir),
        "dataset": run.config.data.dataset,
        "method": run.config.method_label,
        "k": k,
        "queries": len(q_px.y),
        "gallery": len(g_px.y),
        "seed": s.seed,
        "clean": model.measure(q_px.x, q_px.y),
        "baseline": {"name": base_name, "clean": base.measure(q_px.x, q_px.y)},
    }
    out = Path(out) if out is not None else Path(run_dir) / "robustness"
    out.mkdir(parents=True, exist_ok=True)
    figures: list[str] = []
    worst = names[0] if names else None
    steps = {"corruptions": len(names) * len(SEVERITIES), "stability": 1,
             "adversarial": len(ATTACK_TARGETS) * 2 * len(s.eps)}  # fmt: skip
    bar = progress(total=sum(steps[part] for part in s.parts), desc="robustness", unit="step")
    if "corruptions" in s.parts and names:
        tick = time.perf_counter()
        report["corruptions"] = _corruptions(model, base, q_px.x, q_px.y, names, s.seed, bar)
        table = report["corruptions"]["per_corruption"]
        worst = max(names, key=lambda n: table[n]["ce"] if table[n]["ce"] is not None else -1)
        curves = {
            n: [report["clean"]["knn_accuracy"]]
            + [r["knn_accuracy"] for r in table[n]["severities"]]
            for n in names
        }  # noqa: E501
        plot_curves([0, *SEVERITIES], curves, out / "corruptions.png",
                    f"{report['dataset']}: k-NN accuracy under corruption", "severity")  # fmt: skip
        figures.append("corruptions.png")
        s.timings["corruptions"] = time.perf_counter() - tick
    if "stability" in s.parts:
        tick = time.perf_counter()
        rows = sample_rows(q_px.y, s.stability_queries, s.seed)
        bar.set_description_str("robustness: stability")
        report["stability"] = measure_sequences(q_px.x[rows], s.frames, s.seed,
                                                 _predictor(embedder, model.gallery))  # fmt: skip
        report["stability"]["frames"], report["stability"]["queries"] = s.frames, len(rows)
        bar.update()
        s.timings["stability"] = time.perf_counter() - tick
    adversarial_images = None
    if "adversarial" in s.parts:
        tick = time.perf_counter()
        rows = sample_rows(q_px.y, s.attack_queries, s.seed + 2)
        report["adversarial"], adversarial_images = _adversarial(
            embedder, model, q_px.x[rows], q_px.y[rows], s, bar
        )
        for target in ATTACK_TARGETS:
            curves = {
                f"{name} ({target})": [
                    r["knn_accuracy"] for r in report["adversarial"][target][name]
                ]
                for name in ("fgsm", "pgd")
            }
            plot_curves(list(s.eps), curves, out / f"adversarial_{target}.png",
                        f"{report['dataset']}: k-NN accuracy under {s.norm} attacks on the "
                        f"{target} target", f"eps ({s.norm}, fraction of the pixel range)")  # fmt: skip
            figures.append(f"adversarial_{target}.png")
        s.timings["adversarial"] = time.perf_counter() - tick
    bar.close()
    figures.append(_examples(embedder, model.gallery, g_px, q_px, worst, adversarial_images, out,
                             s))  # fmt: skip
    s.timings["total"] = time.perf_counter() - started
    report.update({
        "settings": {"eps": list(s.eps), "norm": s.norm, "pgd_steps": s.pgd_steps,
                     "frames": s.frames, "corruptions": names, "parts": list(s.parts)},
        "seconds": dict(s.timings),
        "figures": figures,
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": str(device)},
    })  # fmt: skip
    write_json_atomic(out / JSON, report)
    write_text_atomic(out / MARKDOWN, render(report))
    return report


def _baseline(
    baseline: str | Path | None,
    g_px: Any,
    k: int,
    device: torch.device,
    shape: Sequence[int],
) -> tuple[Model, str]:
    """The model the mCE is normalised by: another run's k-NN, or k-NN on the raw pixels."""
    if baseline is None:

        def flat(x: torch.Tensor) -> np.ndarray:
            return x.flatten(1).numpy().astype(np.float32)

        return Model(flat, gallery_of(flat(g_px.x), g_px.y, k, probe=False)), "raw-pixel k-NN"
    other = load_run(baseline)
    if tuple(other.spec.input_shape) != tuple(shape):
        raise RobustnessError(
            f"--baseline {baseline} takes inputs {tuple(other.spec.input_shape)}, this run "
            f"{tuple(shape)}: the baseline must be trained on the same images"
        )
    embedder = Embedder(other, device)
    gallery = gallery_of(embedder.embed(g_px.x), g_px.y, k, probe=False)
    return Model(embedder.embed, gallery), f"k-NN of the run {baseline}"


def corrupted(x: torch.Tensor, name: str, severity: int, seed: int) -> torch.Tensor:
    """``corrupt`` in chunks (each chunk its own seed, derived from ``seed``)."""
    return torch.cat([
        corrupt(x[i : i + CHUNK], name, severity, seed * 1_000_003 + i)
        for i in range(0, len(x), CHUNK)
    ])  # fmt: skip


def _corruptions(
    model: Model,
    base: Model,
    x: torch.Tensor,
    y: np.ndarray,
    names: list[str],
    seed: int,
    bar: Any,
) -> dict[str, Any]:
    per: dict[str, Any] = {}
    errors: dict[str, list[float]] = {}
    base_errors: dict[str, list[float]] = {}
    for index, name in enumerate(names):
        rows, base_rows = [], []
        bar.set_description_str(f"robustness: {name}")
        for severity in SEVERITIES:
            xc = corrupted(x, name, severity, seed + 7919 * index)
            rows.append(model.measure(xc, y))
            base_rows.append(base.measure(xc, y))
            bar.update()
        per[name] = {
            "severities": rows,
            "baseline_knn_accuracy": [r["knn_accuracy"] for r in base_rows],
        }
        errors[name] = [1 - r["knn_accuracy"] for r in rows]
        base_errors[name] = [1 - r["knn_accuracy"] for r in base_rows]
    clean = 1 - model.measure(x, y)["knn_accuracy"]
    base_clean = 1 - base.measure(x, y)["knn_accuracy"]
    summary = corruption_errors(errors, clean, base_errors, base_clean)
    for name in names:
        per[name]["ce"] = summary["ce"][name]
        per[name]["relative_ce"] = summary["relative_ce"][name]
        per[name]["mean_knn_accuracy"] = float(1 - np.mean(errors[name]))
    return {
        "per_corruption": per,
        "mce": summary["mce"],
        "relative_mce": summary["relative_mce"],
        "undefined_ce": summary["undefined_ce"],
        "undefined_relative_ce": summary["undefined_relative_ce"],
        "clean_error": clean,
        "baseline_clean_error": base_clean,
    }


def _predictor(
    embedder: Embedder, gallery: Gallery
) -> Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]:
    k = gallery.k

    def predict(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        distances, ids = knn_search(embedder.embed(x), gallery.features, max(5, k))
        return vote(gallery.labels[ids[:, :k]], distances[:, :k]), ids[:, :5]

    return predict


def _adversarial(
    embedder: Embedder, model: Model, x: torch.Tensor, y: np.ndarray, s: Settings, bar: Any
) -> tuple[dict[str, Any], torch.Tensor | None]:
    gallery = model.gallery
    centroids, classes = class_centroids(gallery.features, gallery.labels)
    clean_ids = gallery.search(embedder.embed(x), y).ids[:, : gallery.k]
    neighbours = torch.from_numpy(gallery.features[clean_ids])
    targets: dict[str, Callable[[slice], Callable[[torch.Tensor], torch.Tensor]]] = {
        "knn": lambda rows: centroid_loss(embedder, centroids, classes, y[rows]),
        "retrieval": lambda rows: neighbour_loss(embedder, neighbours[rows]),
    }  # each chunk of queries is attacked with its own queries' targets
    clean = model.measure(x, y)
    report: dict[str, Any] = {"eps": list(s.eps), "norm": s.norm, "queries": len(y)}
    shown = None
    for target, loss_of in targets.items():
        report[target] = {}
        for name in ("fgsm", "pgd"):
            rows = []
            bar.set_description_str(f"robustness: {name} ({target})")
            for eps in s.eps:
                moved = torch.cat([
                    attack(name, loss_of(rows), x[rows], eps, s.pgd_steps, s.norm, 0.0, 1.0)
                    for rows in (slice(i, i + CHUNK) for i in range(0, len(x), CHUNK))
                ])  # fmt: skip
                rows.append(model.measure(moved, y))
                bar.update()
                if target == "knn" and name == "pgd" and eps == max(s.eps):
                    shown = moved
            report[target][name] = rows
        fgsm, pgd = report[target]["fgsm"], report[target]["pgd"]
        report[target]["checks"] = {
            "eps0_unchanged": all(
                row == clean
                for part in (fgsm, pgd)
                for e, row in zip(s.eps, part, strict=True)
                if e == 0
            )
            if 0 in s.eps
            else None,
            "pgd_at_least_fgsm": all(
                p["knn_accuracy"] <= f["knn_accuracy"] + 1 / len(y)
                for f, p in zip(fgsm, pgd, strict=True)
            ),
        }
    return report, shown


def _examples(
    embedder: Embedder,
    gallery: Gallery,
    g_px: Any,
    q_px: Any,
    worst: str | None,
    adversarial: torch.Tensor | None,
    out: Path,
    s: Settings,
) -> str:
    """The grid figure: a few queries clean, under the worst corruption at severity 3, and
    attacked (PGD on the k-NN target at the largest eps; the attack's first queries)."""
    rows = np.arange(min(s.examples, len(q_px.y)))
    x, y = q_px.x[rows], q_px.y[rows]
    blocks = [("clean", x)]
    if worst is not None:
        blocks.append((f"{worst} 3", corrupted(x, worst, 3, s.seed)))
    if adversarial is not None:
        adv_rows = sample_rows(q_px.y, s.attack_queries, s.seed + 2)[: len(rows)]
        x, y = q_px.x[adv_rows], q_px.y[adv_rows]
        blocks = [("clean", x)]
        if worst is not None:
            blocks.append((f"{worst} 3", corrupted(x, worst, 3, s.seed)))
        blocks.append((f"PGD {max(s.eps):g}", adversarial[: len(rows)]))
    grid = [
        (name, images.numpy(), gallery.search(embedder.embed(images), y).ids)
        for name, images in blocks
    ]
    plot_query_grid(grid, g_px.x.numpy(), g_px.y, y, out / "examples.png",
                    "clean, corrupted and adversarial queries with their nearest neighbours")  # fmt: skip
    return "examples.png"
