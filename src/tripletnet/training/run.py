"""``train``: a configuration in, a run folder out. Resolves the configuration once, checks
everything, loads the data, builds the net and the method, assembles the training
(``assemble``) and runs its epochs (``epochs``: the loop, with a callback that monitors the test
split, checkpoints and logs after each epoch)."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..data import DatasetSplits
from ..data.augment import check_shift
from ..data.catalogue import facts
from ..devices import resolve_device
from ..errors import TripletnetError
from ..files import read_json_object, remove_stale_temporaries, write_json_atomic
from ..models import EmbeddingNet, build_model
from ..models.choice import choice_line
from ..runs import (
    CHECKPOINT,
    CONFIG,
    MODEL,
    ModelSpec,
    load_checkpoint,
    prepare_run_folder,
    read_config,
    read_metadata,
    record_command,
)
from ..runs.data import load_data
from ..world import SINGLE, World, barrier, start, translated_failures, world_from_environment
from .adversarial import AdversarialSettings, AdversarialTraining
from .assemble import Optimisation, Training, assemble
from .config import TrainConfig, resumed_config
from .epochs import train_epochs
from .fit import TrainingDiverged
from .methods import Method, MethodContext, method_class
from .pipeline import Augmentation, Pipeline, corruption_augmentation
from .pretrained import load_pretrained
from .step import Step
from .tracking import Loggers


def default_workers() -> int:
    """Image-decoding processes: up to 4, one per core."""
    return min(4, os.cpu_count() or 1)


@dataclass
class Setup:
    """Everything a run trains with, built and checked before the run folder is touched;
    ``history``: a row per epoch trained (a resumed run's earlier ones included)."""

    config: TrainConfig
    data: DatasetSplits
    model: EmbeddingNet
    spec: ModelSpec
    method: Method
    training: Training
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pipeline(self) -> Pipeline:
        assert self.training.pipeline is not None
        return self.training.pipeline

    @property
    def step(self) -> Step:
        return self.training.step

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.training.optimizer


def build(config: TrainConfig, init: bool = True, world: World = SINGLE) -> Setup:
    """Load the data and build the net, the method, the pipeline and the optimiser from a
    resolved ``config`` (``TrainConfig.resolved``; your own data's net, left open there, is
    chosen here from the samples' shape). ``init``: load the weights of ``--init``'s run (a
    resumed run has its own); ``world``: this process's place in a torchrun job (its GPU is
    cuda:LOCAL_RANK)."""
    device = world.device(resolve_device(config.optim.device))
    data = load_data(config)
    if config.architecture is None:
        config = config.resolved(data.input_shape)  # your own data's default net, from its shape
    check_against_data(config, data)
    torch.manual_seed(config.optim.seed)
    workers = default_workers() if config.data.workers is None else config.data.workers
    model, spec = _net(config, data, workers, device, init)
    method, (pool_x, pool_y) = _method(config, data, model, spec)
    pipeline = _pipeline(config, spec, pool_x, pool_y, device, workers)
    training = assemble(model, method, Optimisation.of(config.optim), pipeline, world)
    return Setup(config, data, model, spec, method, training)


def _net(
    config: TrainConfig, data: DatasetSplits, workers: int, device: torch.device, init: bool
) -> tuple[EmbeddingNet, ModelSpec]:
    """The embedding net on ``device`` (``init``: with ``--init``'s weights) and its spec."""
    options = config.model
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
    return model, spec


def _method(
    config: TrainConfig, data: DatasetSplits, model: EmbeddingNet, spec: ModelSpec
) -> tuple[Method, tuple[Any, np.ndarray]]:
    """The training method (adversarial training around it when asked for), checked against
    the net, and the pool of samples it draws from."""
    kind = method_class(config.method)
    pool = kind.pool(data)
    context = MethodContext(
        pool[1], model.embedding_dim, data.input_shape, config.optim.batch_size, config.optim.seed
    )
    method = kind(config.method_options, context)
    if config.robustness.adversarial:  # adversarial training wraps any method's loss
        settings = AdversarialSettings.of(config.robustness, spec.normalizer, spec.pixel_top)
        method = AdversarialTraining(method, settings)
    method.check(model)
    return method, pool


def _pipeline(
    config: TrainConfig,
    spec: ModelSpec,
    pool_x: Any,
    pool_y: np.ndarray,
    device: torch.device,
    workers: int,
) -> Pipeline:
    """The pool's samples, as the net's batches on ``device``, augmented as asked."""
    augmentation = Augmentation(
        config.data.augment_shift,
        config.data.augment_mirror,
        config.data.augment_crop,
        config.data.augment_jitter,
        spec.pixel_top,
        corruption_augmentation(config.robustness),
    )
    return Pipeline(
        pool_x,
        pool_y,
        spec.normalizer,
        device,
        augmentation,
        workers=workers,
        strict=config.data.strict,
        cache_bytes=config.data.cache_mb << 20,
    )


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
    """Raw image values run 0..the dataset's ``pixel_top`` (data/catalogue.py: 255 for uint8,
    16 for scikit-learn's digits); None: vectors."""
    if len(data.input_shape) != 3:
        return None
    return facts(data.name).pixel_top


def check_against_data(config: TrainConfig, data: DatasetSplits) -> None:
    """Options that depend on the data: k of the k-NN classifiers, the shift augmentation,
    image-only defences."""
    check_shift(config.data.augment_shift, data.input_shape)
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


def saved_config(out: Path) -> TrainConfig:
    """The configuration the run folder ``out`` was trained with (its config.json)."""
    return TrainConfig.from_dict(read_json_object(out / CONFIG), str(out / CONFIG))


def run_config(config: TrainConfig | None, out: Path | None, resume: bool) -> TrainConfig:
    """The configuration a run trains with, resolved (once): ``config``'s for a new run; for
    ``resume``, the saved one of ``out`` with the ``RESUMABLE`` options of ``config`` (if any).
    """
    if config is None and not resume:
        raise TripletnetError("a new run needs a TrainConfig; only resume=True can go without")
    given = None if config is None else config.resolved()  # its options checked first
    if not resume:
        assert given is not None
        return given
    if out is None:
        raise TripletnetError("resume=True continues a run folder: give its out")
    prepare_run_folder(out, resume=True, overwrite=False)
    saved = TrainConfig.from_dict(read_config(out).to_dict()).resolved()
    return saved if given is None else resumed_config(saved, given)


def join(config: TrainConfig) -> World:
    """Join the torchrun job this process belongs to (SINGLE when there is none), once the
    resolved ``config`` is known to suit one."""
    check_distributed(config, world_from_environment())
    return start(resolve_device(config.optim.device))


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
    config = run_config(config, out, resume)
    return train_resolved(
        config,
        out,
        join(config),
        resume=resume,
        overwrite=overwrite,
        show_progress=show_progress,
        log_epochs=log_epochs,
        command=command,
    )


def train_resolved(
    config: TrainConfig,
    out: Path,
    world: World,
    *,
    resume: bool,
    overwrite: bool,
    show_progress: bool,
    log_epochs: bool,
    command: str | None,
) -> dict[str, Any]:
    """``train`` with the configuration ``run_config`` resolved, in the job ``join`` joined."""
    chosen_net = config.architecture is None  # your own data's, from its shape
    setup = build(config, init=not resume, world=world)
    config = setup.config
    if chosen_net and world.main and (show_progress or log_epochs):
        assert config.architecture is not None
        tqdm.write(choice_line(config.architecture, setup.data.input_shape))
    if resume:
        if _resumed(setup, out, world):
            return {**summarize(setup.history), "already_finished": True}
    elif world.main:
        prepare_run_folder(out, resume=False, overwrite=overwrite)
        write_json_atomic(out / CONFIG, config.to_dict())
        setup.method.save(out)
    if command is not None and world.main:
        record_command(out, command, resume)
    _train_logged(setup, out, resume, show_progress, log_epochs)
    return {**summarize(setup.history), "unreadable_images": len(setup.pipeline.unreadable)}


def _resumed(setup: Setup, out: Path, world: World) -> bool:
    """Read ``out``'s checkpoint and the method's state back and write the configuration's
    new total of epochs; True when the run has nothing left to train."""
    epochs = setup.config.optim.epochs
    assert epochs is not None
    if world.main:
        remove_stale_temporaries(out)
    learned = setup.method.learned()
    state = load_checkpoint(out / CHECKPOINT, setup.model, setup.optimizer, learned)
    setup.history, done = state["history"], state["epoch"]
    setup.step.restore(state)
    if epochs < done:
        raise TripletnetError(
            f"--epochs {epochs}: {out} has already trained {done} epochs; "
            f"give --epochs {done} or more to continue it"
        )
    setup.method.restore(out)
    barrier(world)  # every rank has read the folder before rank 0 writes to it
    if world.main:
        write_json_atomic(out / CONFIG, setup.config.to_dict())  # the new total, if any
    return done == epochs and (out / MODEL).is_file()


def _train_logged(
    setup: Setup, out: Path, resume: bool, show_progress: bool, log_epochs: bool
) -> None:
    """The epochs, logged by rank 0's ``--log`` loggers; a new run that fails before its first
    checkpoint leaves no folder behind, and a diverged one says what to do."""
    world = setup.step.world
    loggers: Loggers | None = None
    try:
        if world.main:
            loggers = Loggers(setup.config.evaluation.loggers, out)
            loggers.config(setup.config.to_dict())
        with translated_failures(world):
            train_epochs(setup, out, show_progress, log_epochs, loggers)
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
