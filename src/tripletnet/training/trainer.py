"""The training loop, top to bottom: data, model, method, epochs, checkpoints."""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data import DatasetSplits, Normalizer, load_dataset
from ..data.augment import augment
from ..devices import resolve_device
from ..errors import TripletnetError
from ..evaluation.classify import knn_leave_one_out_accuracy
from ..evaluation.embed import embed
from ..evaluation.triplet_error import triplet_error
from ..files import (
    load_npy,
    read_json_object,
    remove_stale_temporaries,
    save_npy_atomic,
    write_json_atomic,
)
from ..models import EmbeddingNet, build_model, channels_last
from ..sampling import fixed_test_triplets
from .checkpoint import CHECKPOINT, MODEL, load_checkpoint, save_checkpoint
from .config import RESUMABLE, TrainConfig
from .few_labels import training_pool
from .methods import TrainingMethod, build_method
from .pretrained import load_pretrained
from .run_folder import model_spec, prepare_run_folder
from .semi_supervised import LABELLED, labelled_subset


class TrainingDiverged(TripletnetError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def cosine_lr(base_lr: float, progress: float, min_fraction: float) -> float:
    """Cosine decay from ``base_lr`` to ``base_lr * min_fraction`` as progress goes 0 -> 1."""
    return base_lr * (min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def plateau_lr(
    base_lr: float, losses: list[float], min_fraction: float, patience: int = 1
) -> float:
    """``base_lr`` divided by 10 each time the epoch loss has not fallen by 0.1 % for
    ``patience`` epochs (Hoffer et al. 2016), never below ``base_lr * min_fraction``.
    A pure function of the loss history, so a resumed run continues the same schedule."""
    lr, best, stale = base_lr, math.inf, 0
    for loss in losses:
        best, stale = (loss, 0) if loss < best * (1 - 1e-3) else (best, stale + 1)
        if stale >= patience:
            lr, stale = lr / 10, 0
    return max(lr, base_lr * min_fraction)


def learned_loss(method: object) -> nn.Module | None:
    """The method's loss when it has parameters of its own (proxy losses), else None."""
    criterion = getattr(method, "criterion", None)
    if isinstance(criterion, nn.Module) and any(True for _ in criterion.parameters()):
        return criterion
    return None


def train(
    config: TrainConfig | None,
    out: Path,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    log_epochs: bool = True,
) -> dict[str, Any]:
    """Train an embedding net as ``config`` says, writing the run folder ``out``.

    Every option is checked, the data loaded and the net and method built before the run folder
    is touched; a new run that fails before its first checkpoint leaves no folder behind.
    ``resume`` continues ``out`` with its saved configuration; a ``config`` given with it may
    differ from that only in ``RESUMABLE`` fields (more epochs continue to the new total).

    Returns a summary (epochs, seconds, images per second, final test triplet error, and
    ``already_finished`` when a resumed run had nothing left to train).
    """
    out = Path(out)
    if resume:
        prepare_run_folder(out, resume=True, overwrite=False)
        saved = TrainConfig.from_dict(read_json_object(out / "config.json"), f"{out}/config.json")
        config = saved if config is None else resumed_config(saved.resolved(), config.resolved())
    elif config is None:
        raise TripletnetError("a new run needs a TrainConfig; only resume=True can go without")
    config = config.resolved()
    device = resolve_device(config.device)
    data = load_dataset(config.dataset, config.data_dir, config.download)
    check_against_data(config, data)

    torch.manual_seed(config.seed)
    architecture = config.architecture
    model = build_model(architecture, data.input_shape, config.embedding_dim, **config.net_options)
    # conv weights channels-last, like the batches of inputs() (torch's stubs lack memory_format)
    model = model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    normalizer = data.normalizer()
    spec = model_spec(architecture, data.input_shape, model, normalizer, data.class_names)
    if config.init and not resume:
        load_pretrained(model, config.init, spec)
    labelled = None  # semi-supervised: which train samples keep their labels, saved with the run
    if config.method == "semi-supervised":
        labelled = (
            np.asarray(load_npy(out / LABELLED))
            if resume
            else labelled_subset(data.train.y, config.labels_per_class, config.seed)
        )
    pool_x, pool_y = training_pool(config, data)
    data = replace(data, unlabelled=None)  # STL-10's 100,000 images now live in the pool alone
    method = build_method(config, pool_y, model.embedding_dim, labelled)
    method.check(model, data.input_shape)
    learned = learned_loss(method)  # a loss with parameters of its own (proxies) trains too
    if learned is not None:
        learned.to(device)
    assert config.lr is not None and config.epochs is not None
    optimizer = torch.optim.SGD(
        [*model.parameters(), *(learned.parameters() if learned is not None else [])],
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )

    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume:
        remove_stale_temporaries(out)
        state = load_checkpoint(out / CHECKPOINT, model, optimizer, learned)
        history, start_epoch = state["history"], state["epoch"]
        if config.epochs < start_epoch:
            raise TripletnetError(
                f"--epochs {config.epochs}: {out} has already trained {start_epoch} epochs; "
                f"give --epochs {start_epoch} or more to continue it"
            )
        write_json_atomic(out / "config.json", config.to_dict())  # the new total, if any
        if start_epoch == config.epochs and (out / MODEL).is_file():
            return {**summarize(history), "already_finished": True}
    else:
        prepare_run_folder(out, resume=False, overwrite=overwrite)
        write_json_atomic(out / "config.json", config.to_dict())
        if labelled is not None:
            save_npy_atomic(out / LABELLED, labelled)
    try:
        history = _fit(
            config,
            out,
            model,
            method,
            learned,
            optimizer,
            pool_x,
            data,
            normalizer,
            spec,
            device,
            history,
            start_epoch,
            show_progress,
            log_epochs,
        )
    except BaseException:
        if not resume and not (out / CHECKPOINT).is_file():
            shutil.rmtree(out, ignore_errors=True)  # nothing to resume: leave nothing behind
        raise
    return summarize(history)


def resumed_config(saved: TrainConfig, given: TrainConfig) -> TrainConfig:
    """The configuration a resumed run continues with: ``saved``, with the ``RESUMABLE``
    fields of ``given``; any other difference is an error naming the options."""
    changed = [
        field.name
        for field in fields(TrainConfig)
        if getattr(given, field.name) != getattr(saved, field.name)
    ]
    refused = [name for name in changed if name not in RESUMABLE]
    if refused:
        listed = ", ".join(
            f"--{name.replace('_', '-')} (saved: {getattr(saved, name)!r}, given: "
            f"{getattr(given, name)!r})"
            for name in refused
        )
        raise TripletnetError(
            f"--resume continues a run as it was configured; it cannot change {listed}. "
            "Leave those options out, or start a new run with another --out"
        )
    return replace(saved, **{name: getattr(given, name) for name in changed})


def check_against_data(config: TrainConfig, data: DatasetSplits) -> None:
    """Options that depend on the data's size: k of the k-NN classifiers."""
    smallest = min(len(data.train), len(data.test) - 1)
    if config.k > smallest:
        raise TripletnetError(
            f"-k {config.k} is larger than the data allows: the k-NN classifiers vote among "
            f"{len(data.train)} training and {len(data.test) - 1} other test samples; "
            f"choose -k {smallest} or less"
        )


def summarize(history: list[dict[str, float]]) -> dict[str, Any]:
    """Epochs, training seconds, images per second and the last epoch's loss and error."""
    train_seconds = sum(row["seconds"] for row in history)
    fed = sum(row.get("images", 0.0) for row in history)
    return {
        "epochs": len(history),
        "train_seconds": train_seconds,
        "images_per_second": fed / train_seconds if train_seconds else math.nan,
        "final_loss": history[-1]["loss"] if history else math.nan,
        "test_triplet_error": history[-1]["test_triplet_error"] if history else math.nan,
    }


def _fit(
    config: TrainConfig,
    out: Path,
    model: EmbeddingNet,
    method: TrainingMethod,
    learned: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    pool_x: np.ndarray,
    data: DatasetSplits,
    normalizer: Normalizer,
    spec: dict[str, Any],
    device: torch.device,
    history: list[dict[str, float]],
    start_epoch: int,
    show_progress: bool,
    log_epochs: bool,
) -> list[dict[str, float]]:
    """The epochs from ``start_epoch`` on, a checkpoint after each, then model.safetensors."""
    assert config.lr is not None and config.epochs is not None
    train_x = torch.from_numpy(pool_x)
    test_triplets = fixed_test_triplets(data.test.y, config.test_triplets, config.seed)

    def inputs(indices: np.ndarray) -> torch.Tensor:
        batch = normalizer(train_x[torch.from_numpy(indices)]).to(device, non_blocking=True)
        batch = augment(batch, config.augment_shift, config.augment_mirror)
        return channels_last(batch)

    steps_per_epoch = method.num_batches()
    total_steps = steps_per_epoch * config.epochs
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(config.seed * 100_003 + epoch)  # dropout is reproducible on resume
        model.train()
        model.compute_dtype = config.compute_dtype
        epoch_lr = (  # the plateau schedule is fixed for an epoch; cosine changes every step
            plateau_lr(config.lr, [row["loss"] for row in history], config.min_lr_fraction)
            if config.lr_schedule == "plateau"
            else None
        )
        started, seen, loss_sum = time.perf_counter(), 0, 0.0
        error_sum, error_seen, images = 0.0, 0, 0  # batches without a triplet give no error
        bar = tqdm(
            method.batches(epoch),
            total=steps_per_epoch,
            disable=not show_progress,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            leave=False,
            mininterval=0.5,
        )
        for step, batch in enumerate(bar):
            lr = epoch_lr or cosine_lr(
                config.lr, (epoch * steps_per_epoch + step) / total_steps, config.min_lr_fraction
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, stats = method.loss(model, batch, inputs)
            if not torch.isfinite(loss):
                kept = (
                    f"the last good checkpoint (epoch {epoch}) is kept in {out}. Lower --lr and "
                    "run again with --resume"
                    if (out / CHECKPOINT).is_file()
                    else "no epoch finished, so no run folder is kept. Lower --lr and run again"
                )
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; {kept}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(batch)
            error = stats.get("triplet_error", math.nan)
            if not math.isnan(error):
                error_sum, error_seen = error_sum + error * len(batch), error_seen + len(batch)
            seen += len(batch)
            images += batch.size  # a triplet batch is (B, 3); the other methods' are flat
            bar.set_postfix(
                loss=f"{loss_sum / seen:.4f}",
                triplet_err=f"{error_sum / max(error_seen, 1):.3f}",
                refresh=False,
            )
        bar.close()
        seconds = time.perf_counter() - started
        model.compute_dtype = None  # evaluation in float32
        test_embeddings = embed(model, data.test.x, normalizer, device=device)
        row = {
            "epoch": epoch + 1,
            "loss": loss_sum / seen,
            "train_triplet_error": error_sum / error_seen if error_seen else math.nan,
            "test_triplet_error": triplet_error(test_embeddings, test_triplets),
            "test_knn_accuracy": knn_leave_one_out_accuracy(test_embeddings, data.test.y, config.k),
            "lr": lr,
            "seconds": seconds,
            "images": images,
        }
        history.append(row)
        save_checkpoint(
            out / CHECKPOINT,
            model,
            optimizer,
            {"epoch": epoch + 1, "history": history, "spec": spec},
            learned,
        )
        write_json_atomic(out / "history.json", history)
        if log_epochs:
            tqdm.write(
                f"epoch {epoch + 1}/{config.epochs}  loss {row['loss']:.4f}  "
                f"train triplet error {row['train_triplet_error']:.4f}  "
                f"test triplet error {row['test_triplet_error']:.4f}  "
                f"test {config.k}-NN accuracy {row['test_knn_accuracy']:.4f}  ({seconds:.1f} s)"
            )

    save_checkpoint(out / MODEL, model, None, {"spec": spec, "dataset": config.dataset})
    return history
