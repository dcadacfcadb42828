"""``train``: a configuration in, a run folder out. Checks everything, loads the data, builds
the net and the method, then hands them to the loop (``fit``) with a callback that monitors the
test split, checkpoints and logs after each epoch."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..data import DatasetSplits
from ..devices import resolve_device
from ..errors import TripletnetError
from ..evaluation.classify import knn_accuracy, knn_leave_one_out_accuracy
from ..evaluation.triplet_error import triplet_error
from ..files import remove_stale_temporaries, write_json_atomic
from ..models import EmbeddingNet, build_model
from ..runs import (
    CHECKPOINT,
    CONFIG,
    HISTORY,
    MODEL,
    ModelSpec,
    load_checkpoint,
    prepare_run_folder,
    read_config,
    read_metadata,
    record_command,
    save_checkpoint,
)
from ..runs.data import Embedded, embed_split, load_data
from ..sampling import fixed_test_triplets
from .adversarial import AdversarialSettings, AdversarialTraining
from .config import TrainConfig, resumed_config
from .distributed import SINGLE, World, barrier, start, translated_failures
from .fit import TrainingDiverged, fit
from .methods import Method, MethodContext, method_class
from .pipeline import Augmentation, Pipeline, corruption_augmentation
from .precision import compute_dtype
from .pretrained import load_pretrained
from .schedule import cosine_lr, plateau_lr, step_lr
from .step import Step
from .tracking import Logger, Loggers

MONITORED = 10_000  # test samples embedded after each epoch (all of them up to this many)


def default_workers() -> int:
    """Image-decoding processes: up to 4, one per core."""
    return min(4, os.cpu_count() or 1)


@dataclass
class Setup:
    """Everything a run trains with, built and checked before the run folder is touched."""

    config: TrainConfig
    data: DatasetSplits
    model: EmbeddingNet
    spec: ModelSpec
    method: Method
    pipeline: Pipeline
    optimizer: torch.optim.Optimizer
    step: Step


def build(config: TrainConfig, init: bool = True, world: World = SINGLE) -> Setup:
    """Load the data and build the net, the method, the pipeline and the optimiser
    (``init``: load the weights of ``--init``'s run; a resumed run has its own); ``world``:
    this process's place in a torchrun job (its GPU is cuda:LOCAL_RANK)."""
    device = world.device(resolve_device(config.optim.device))
    check_distributed(config, world)
    data = load_data(config)
    config = config.resolved(data.input_shape)  # your own data's default net, from its shape
    check_against_data(config, data)
    torch.manual_seed(config.optim.seed)
    options = config.model
    workers = default_workers() if config.data.workers is None else config.data.workers
    assert config.architecture is not None
    model = build_model(
        config.architecture,
        data.input_shape,
        options.embedding_dim,
        normalize=config.metric == "cosine",
        factory_args=options.factory_args,
        weights=options.weights,
        **options.net_options,
    )
    spec = ModelSpec(
        architecture=config.architecture,
        input_shape=data.input_shape,
        embedding_dim=model.embedding_dim,
        normalizer=data.normalizer(workers),
        net_options=model.layer_options(),
        class_names=data.class_names,
        metric=config.metric,
        factory_args=options.factory_args,
        pixel_top=pixel_top(data),
    )
    # conv weights channels-last, like the batches (torch's stubs lack memory_format)
    model = model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    if options.init and init:
        load_pretrained(model, options.init, spec)
    kind = method_class(config.method)
    pool_x, pool_y = kind.pool(data)
    context = MethodContext(
        pool_y, model.embedding_dim, data.input_shape, config.optim.batch_size, config.optim.seed
    )
    method = kind(config.method_options, context)
    if config.robustness.adversarial:  # adversarial training wraps any method's loss
        settings = AdversarialSettings.of(config.robustness, spec.normalizer, spec.pixel_top)
        method = AdversarialTraining(method, settings)
    method.check(model)
    learned = method.learned()
    if learned is not None:
        learned.to(device)
    augmentation = Augmentation(
        config.data.augment_shift,
        config.data.augment_mirror,
        config.data.augment_crop,
        config.data.augment_jitter,
        spec.pixel_top,
        corruption_augmentation(config.robustness),
    )
    pipeline = Pipeline(
        pool_x,
        pool_y,
        spec.normalizer,
        device,
        augmentation,
        workers=workers,
        strict=config.data.strict,
        cache_bytes=config.data.cache_mb << 20,
    )
    parameters = [*model.parameters(), *(learned.parameters() if learned is not None else [])]
    optimizer = torch.optim.SGD(
        parameters,
        lr=config.optim.lr or 0.0,
        momentum=config.optim.momentum,
        weight_decay=config.optim.weight_decay,
        nesterov=config.optim.nesterov,
    )
    precision = compute_dtype(config.optim.precision, device)
    step = Step(model, method, optimizer, world, precision, config.optim.compile)
    return Setup(config, data, model, spec, method, pipeline, optimizer, step)


def check_distributed(config: TrainConfig, world: World) -> None:
    """Options a torchrun job cannot train with."""
    if not world.distributed:
        return
    if not method_class(config.method).distributed:
        raise TripletnetError(
            f"--method {config.method} cannot be split across processes; run it without torchrun"
        )
    if config.robustness.adversarial:
        raise TripletnetError(
            f"--adversarial {config.robustness.adversarial} attacks each batch with extra passes "
            "through the net, which torchrun cannot split yet; run it without torchrun"
        )
    if config.optim.batch_size < world.size:
        raise TripletnetError(
            f"--batch-size {config.optim.batch_size} is smaller than the job's {world.size} "
            "processes; each process embeds a share of every batch"
        )


def pixel_top(data: DatasetSplits) -> float | None:
    """Raw image values run 0..255 (uint8; 0..16 for scikit-learn's digits); None: vectors."""
    if len(data.input_shape) != 3:
        return None
    return 16.0 if data.name == "digits" else 255.0


def check_against_data(config: TrainConfig, data: DatasetSplits) -> None:
    """Options that depend on the data: k of the k-NN classifiers, image-only defences."""
    if config.robustness.augment_corruptions and len(data.input_shape) != 3:
        raise TripletnetError(
            f"--augment-corruptions corrupts images; {data.name}'s samples are vectors "
            f"{data.input_shape}"
        )
    smallest = min(len(data.train), len(data.test) - 1)
    if config.evaluation.k > smallest:
        raise TripletnetError(
            f"-k {config.evaluation.k} is larger than the data allows: the k-NN classifiers vote "
            f"among {len(data.train)} training and {len(data.test) - 1} other test samples; "
            f"choose -k {smallest} or less"
        )


def train(
    config: TrainConfig | None,
    out: Path,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    log_epochs: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train an embedding net as ``config`` says, writing the run folder ``out``.

    Every option is checked, the data loaded and the net and method built before the run folder
    is touched; a new run that fails before its first checkpoint leaves no folder behind.
    ``resume`` continues ``out`` with its saved configuration; a ``config`` given with it may
    differ from that only in ``RESUMABLE`` options (more epochs continue to the new total).

    The run's ``--log`` loggers get the configuration, each step and each epoch. ``command``,
    the command line that asked for this, goes to the folder's ``command.txt`` before training.

    Returns a summary (epochs, seconds, images per second, final test triplet error, and
    ``already_finished`` when a resumed run had nothing left to train).

    Under torchrun (``training.distributed``) every process trains its share and rank 0 alone
    writes ``out``; the others return the same summary.
    """
    out = Path(out)
    if config is None and not resume:
        raise TripletnetError("a new run needs a TrainConfig; only resume=True can go without")
    world = start(resolve_device((config or read_config(out)).optim.device))
    if resume:
        prepare_run_folder(out, resume=True, overwrite=False)
        saved = TrainConfig.from_dict(read_config(out).to_dict()).resolved()
        config = saved if config is None else resumed_config(saved, config.resolved())
    assert config is not None
    setup = build(config.resolved(), init=not resume, world=world)
    config = setup.config
    history: list[dict[str, float]] = []
    epochs = config.optim.epochs
    assert epochs is not None
    if resume:
        if world.main:
            remove_stale_temporaries(out)
        learned = setup.method.learned()
        state = load_checkpoint(out / CHECKPOINT, setup.model, setup.optimizer, learned)
        history, done = state["history"], state["epoch"]
        setup.step.restore(state)
        if epochs < done:
            raise TripletnetError(
                f"--epochs {epochs}: {out} has already trained {done} epochs; "
                f"give --epochs {done} or more to continue it"
            )
        setup.method.restore(out)
        barrier(world)  # every rank has read the folder before rank 0 writes to it
        if world.main:
            write_json_atomic(out / CONFIG, config.to_dict())  # the new total, if any
        if done == epochs and (out / MODEL).is_file():
            return {**summarize(history), "already_finished": True}
    elif world.main:
        prepare_run_folder(out, resume=False, overwrite=overwrite)
        write_json_atomic(out / CONFIG, config.to_dict())
        setup.method.save(out)
    if command is not None and world.main:
        record_command(out, command, resume)
    loggers: Loggers | None = None
    try:
        if world.main:
            loggers = Loggers(config.evaluation.loggers, out)
            loggers.config(config.to_dict())
        with translated_failures(world):
            _train_epochs(setup, out, history, show_progress, log_epochs, loggers)
    except BaseException as error:
        if world.main and not resume and not (out / CHECKPOINT).is_file():
            shutil.rmtree(out, ignore_errors=True)  # nothing to resume: leave nothing behind
        if isinstance(error, TrainingDiverged):
            kept = (
                f"the last good checkpoint (epoch {read_metadata(out / CHECKPOINT)['epoch']}) is "
                f"kept in {out}; lower --lr and run again with --resume"
                if (out / CHECKPOINT).is_file()
                else "no epoch finished, so no run folder is kept; lower --lr and run again"
            )
            raise TrainingDiverged(f"{error}; {kept}") from None
        raise
    finally:
        if loggers is not None:
            loggers.close()
    return {**summarize(history), "unreadable_images": len(setup.pipeline.unreadable)}


def _train_epochs(
    setup: Setup,
    out: Path,
    history: list[dict[str, float]],
    show_progress: bool,
    log_epochs: bool,
    loggers: Logger | None,
) -> None:
    config, data, model = setup.config, setup.data, setup.model
    world = setup.step.world
    optim = config.optim
    assert optim.lr is not None and optim.epochs is not None
    steps = setup.method.num_batches()
    lr, total = optim.lr, steps * optim.epochs
    monitored = _monitored(data)
    k = min(config.evaluation.k, len(monitored) - 1)
    labelled = setup.method.labelled_only()
    triplets: dict[int, np.ndarray] = {}  # by the number of readable test samples

    def test_triplets(labels: np.ndarray) -> np.ndarray:
        if len(labels) not in triplets:
            triplets[len(labels)] = fixed_test_triplets(
                labels, config.evaluation.test_triplets, optim.seed
            )
        return triplets[len(labels)]

    def schedule(epoch: int, step: int) -> float:
        if optim.lr_schedule == "plateau":
            return plateau_lr(lr, [row["loss"] for row in history], optim.min_lr_fraction)
        if optim.lr_schedule == "step":
            return step_lr(lr, epoch, optim.milestones)
        return cosine_lr(lr, (epoch * steps + step) / total, optim.min_lr_fraction)

    def labelled_error(test: Embedded) -> float:
        """Test error of 1-NN to the labelled training samples (the few-label papers' figure)."""
        assert labelled is not None
        pipeline = setup.pipeline
        train = embed_split(
            model,
            data.train.take(labelled),
            pipeline.evaluation_prepare,
            pipeline.device,
            pipeline.workers,
        )
        return 1.0 - knn_accuracy(train.embeddings, train.labels, test.embeddings, test.labels, 1)

    def on_epoch_end(epoch: int, row: dict[str, Any]) -> None:
        if loggers is None:  # not rank 0: it alone evaluates and writes
            history.append({"epoch": epoch + 1, **row, "test_triplet_error": math.nan})
            return
        pipeline = setup.pipeline
        test = embed_split(
            model, monitored, pipeline.evaluation_prepare, pipeline.device, pipeline.workers
        )
        row = {
            "epoch": epoch + 1,
            "loss": row["loss"],
            "train_triplet_error": row.get("triplet_error", math.nan),
            "test_triplet_error": triplet_error(test.embeddings, test_triplets(test.labels)),
            "test_knn_accuracy": knn_leave_one_out_accuracy(test.embeddings, test.labels, k),
            **({} if labelled is None else {"test_labelled_1nn_error": labelled_error(test)}),
            "lr": row["lr"],
            "seconds": row["seconds"],
            "images": row["images"],
            "unreadable_images": len(pipeline.unreadable),
        }
        history.append(row)
        loggers.epoch(row)
        save_checkpoint(
            out / CHECKPOINT,
            model,
            setup.optimizer,
            {
                "epoch": epoch + 1,
                "history": history,
                "spec": setup.spec.to_dict(),
                **setup.step.state(),
            },
            setup.method.learned(),
        )
        write_json_atomic(out / HISTORY, history)
        if log_epochs:
            tqdm.write(
                f"epoch {epoch + 1}/{optim.epochs}  loss {row['loss']:.4f}  "
                f"train triplet error {row['train_triplet_error']:.4f}  "
                f"test triplet error {row['test_triplet_error']:.4f}  "
                f"test {k}-NN accuracy {row['test_knn_accuracy']:.4f}"
                + few_labels(row)
                + f"  ({row['seconds']:.1f} s)"
            )

    fit(
        setup.step,
        setup.pipeline,
        range(len(history), optim.epochs),
        schedule,
        on_epoch_end,
        optim.seed,
        show_progress and world.main,
        on_steps=None if loggers is None else loggers.steps,
    )
    if world.main:
        save_checkpoint(
            out / MODEL, model, None, {"spec": setup.spec.to_dict(), "dataset": config.data.dataset}
        )


def _monitored(data: DatasetSplits) -> Any:
    """The test samples embedded after each epoch: all, or MONITORED evenly spaced ones."""
    test = data.test
    if len(test) <= MONITORED:
        return test
    return test.take(np.linspace(0, len(test) - 1, MONITORED).astype(np.int64))


def few_labels(row: dict[str, Any]) -> str:
    """The epoch log's 1-NN error to the labelled samples, in few-label runs."""
    error = row.get("test_labelled_1nn_error")
    return "" if error is None else f"  test error of 1-NN to the labelled {error:.4f}"


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
