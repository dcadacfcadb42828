"""A scikit-learn estimator for vector data: a deep metric embedding learned from labels.

``TripletEmbedder`` is a transformer (``fit(X, y)``, ``transform(X)``) built from the training
layer's public pieces: an ``mlp`` from ``models.build_model``, a method from the registry
(``training.methods``), an in-memory ``Pipeline`` and the loop ``training.fit``. It works in a
scikit-learn ``Pipeline`` (e.g. before ``KNeighborsClassifier``), under ``GridSearchCV`` and
``cross_val_score``, and is saved as one safetensors file (``save`` / ``load``); pickling it
never pickles a torch object (the weights travel as safetensors bytes).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import load_file, safe_open, save_file
from safetensors.torch import save as save_tensors
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .data import Normalizer
from .devices import resolve_device
from .errors import TripletnetError
from .files import write_atomic
from .models import EmbeddingNet, build_model
from .training.assemble import Optimisation, assemble
from .training.fit import TrainingDiverged
from .training.methods import Method, MethodContext, method_class, typed_options
from .training.pipeline import Pipeline

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _validate_data = None

FORMAT = "tripletnet.sklearn.TripletEmbedder"  # the metadata key of a saved estimator
VERSION = 1
METHOD_NAMES = ("triplet", "batch-mining")
DEFAULT_LOSS = "triplet-margin"  # method="batch-mining" without a loss (batch-all triplets)
DEFAULT_LR = {"triplet": 0.2, "batch-mining": 0.05}  # lr=None
TRIPLETS_PER_SAMPLE = 8  # triplets_per_epoch=None: this many per training sample ...
MIN_TRIPLETS, MAX_TRIPLETS = 4_096, 200_000  # ... within these bounds
MAX_CLASSES_PER_BATCH = 16  # batch-mining: P classes x K samples, P * K about batch_size
MOMENTUM, WEIGHT_DECAY, MIN_LR_FRACTION = 0.9, 1e-4, 0.01  # SGD and the cosine schedule
TRANSFORM_BATCH = 4_096


class EstimatorInputError(TripletnetError, ValueError):
    """Bad input or parameters for ``TripletEmbedder`` (a ValueError, as scikit-learn expects)."""


class EstimatorInputTypeError(EstimatorInputError, TypeError):
    """Input of a type that cannot be used (an object array of dicts, sparse X): also a
    TypeError, as scikit-learn raises for it."""


class EstimatorFileError(TripletnetError, ValueError):
    """A file that ``TripletEmbedder.load`` cannot read."""


class TripletEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Learn an embedding of vector data in which samples of a class lie close together.

    Inputs are standardised per feature (a ``StandardScaler`` fitted inside, as tabular
    features come in different units), then globally (the training layer's ``Normalizer``,
    close to the identity after the scaler), and embedded by an MLP (``hidden`` units,
    ``depth`` Linear-ReLU-Dropout blocks, a linear layer to ``embedding_dim``). Training is
    SGD (momentum 0.9, weight decay 1e-4) with a cosine learning-rate decay to 1 % of ``lr``.

    Parameters
    ----------
    method : "triplet" or "batch-mining"
        ``triplet``: Hoffer & Ailon's distance-ratio loss on random triplets. ``batch-mining``:
        ``loss`` on P x K class-balanced batches (P up to 16 classes, K about batch_size / P).
    loss : str or None
        With method="batch-mining" only: a loss of ``tripletnet.losses`` by name (e.g.
        "triplet-margin", "multi-similarity", "supcon", "arcface"); None: "triplet-margin" on
        all the batch's triplets. Losses on cosine similarity end the net with L2
        normalisation (``metric_`` "cosine").
    embedding_dim, hidden, depth, dropout : the MLP's output size, width, blocks and dropout.
    epochs : passes of training; batch_size : triplets (triplet) or samples (batch-mining)
        per step.
    lr : float or None
        The initial learning rate; None: 0.2 for method="triplet", 0.05 for batch-mining.
    triplets_per_epoch : int or None
        Random triplets per epoch (method="triplet" only); None: 8 per training sample, at
        least 4,096 and at most 200,000. Batch-mining passes over every sample once an epoch.
    device : "cpu", "auto" (a GPU when there is one), "cuda", "cuda:N" or "mps".
    random_state : int, RandomState or None
        Seeds the weights, the triplets or batches and dropout: the same int gives the same
        embedding (on the same machine and device); None or a RandomState: a seed drawn from
        NumPy's. Torch's global random state is left as it was (and NumPy's, for an int).
    verbose : bool
        A progress bar and one line per epoch.

    Bad parameters or input raise ``EstimatorInputError`` (a ``ValueError``; a ``TypeError``
    too for input of an unusable type) with a one-line message; ``load`` raises
    ``EstimatorFileError``. ``save(path)`` writes one safetensors file, ``load(path)`` reads
    it without unpickling anything, and a pickle of the estimator holds the weights as
    safetensors bytes, no torch object.

    Attributes
    ----------
    model_ : the trained ``EmbeddingNet`` (on the CPU, in eval mode).
    scaler_ : the fitted ``StandardScaler``; normalizer_ : the global ``Normalizer``.
    classes_ : the labels seen in ``fit``; n_features_in_ ; embedding_dim_ ;
    method_ : the method trained ("triplet" or "batch-mining"); metric_ : "euclidean" or
    "cosine"; loss_curve_ : the mean training loss of each epoch.
    """

    def __init__(
        self,
        method: str = "triplet",
        loss: str | None = None,
        embedding_dim: int = 32,
        hidden: int = 256,
        depth: int = 2,
        dropout: float = 0.1,
        epochs: int = 10,
        batch_size: int = 128,
        lr: float | None = None,
        triplets_per_epoch: int | None = None,
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.method = method
        self.loss = loss
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.depth = depth
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.triplets_per_epoch = triplets_per_epoch
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- scikit-learn's protocol ------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> TripletEmbedder:
        """Standardise ``X`` and train the embedding net on the classes ``y``."""
        method = self._check_params()
        X, y = self._validate(X, y, reset=True)
        try:
            check_classification_targets(y)
        except ValueError as error:
            raise EstimatorInputError(" ".join(str(error).split())) from None
        encoder = LabelEncoder().fit(y)
        labels = encoder.transform(y).astype(np.int64)
        counts = np.bincount(labels)
        if len(counts) < 2:
            raise EstimatorInputError(
                f"TripletEmbedder needs samples of at least 2 classes in y; got 1 class "
                f"({encoder.classes_[0]!r}) in {len(labels)} samples"
            )
        if method == "triplet" and counts.max() < 2:
            raise EstimatorInputError(
                "method='triplet' needs a class with at least two samples (an anchor and its "
                f"positive); every one of the {len(counts)} classes has one sample; add samples "
                "or use method='batch-mining'"
            )
        device = _device(self.device)
        seed = _seed(self.random_state)
        scaler = StandardScaler().fit(X)
        scaled = scaler.transform(X).astype(np.float32)
        normalizer = Normalizer.fit(scaled, seed=seed)
        with _own_random_state(device):
            model, loss_curve, metric = self._train(
                method, scaled, labels, normalizer, device, seed
            )
        self.scaler_ = scaler
        self.normalizer_ = normalizer
        self.model_ = model
        self.classes_ = encoder.classes_
        self.embedding_dim_ = int(model.embedding_dim)
        self.method_ = method
        self.metric_ = metric
        self.loss_curve_ = loss_curve
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The embeddings (n_samples, embedding_dim) of ``X``: float32 for float32 input,
        float64 otherwise; the net runs in float64 (float32 on MPS, and a cosine loss's final L2
        normalisation in float32), in batches, on ``device``."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        inputs = self._standardized(X)
        device = _device(self.device)
        precision = torch.float32 if device.type == "mps" else torch.float64  # MPS: no float64
        model = copy.deepcopy(self.model_).to(device, precision).eval()
        out = np.empty((len(inputs), self.embedding_dim_), dtype=dtype)
        with torch.no_grad():
            for start in range(0, len(inputs), TRANSFORM_BATCH):
                batch = torch.from_numpy(inputs[start : start + TRANSFORM_BATCH])
                out[start : start + len(batch)] = model(batch.to(device, precision)).cpu().numpy()
        return out

    @property
    def _n_features_out(self) -> int:
        """The embedding size, for ``get_feature_names_out``."""
        return self.embedding_dim_

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"requires_y": True, "preserves_dtype": [np.float64, np.float32]}

    # -- saving, loading, pickling ----------------------------------------------------------

    def save(self, path: str | PathLike[str]) -> Path:
        """Write the fitted estimator to one safetensors file (weights, scaler and normaliser
        as tensors; parameters, classes and shapes as JSON metadata), atomically."""
        check_is_fitted(self)
        params = {
            name: value.item() if isinstance(value, (np.integer, np.floating, np.bool_)) else value
            for name, value in self.get_params().items()
        }
        for name, value in params.items():
            if not (value is None or isinstance(value, (str, int, float, bool))):
                raise EstimatorInputError(
                    f"save() stores parameters as JSON; {name}={value!r} is not a number, string "
                    "or None (use an int random_state)"
                )
        classes = self.classes_.tolist()
        try:
            header = json.dumps(
                {
                    "version": VERSION,
                    "params": params,
                    "classes": classes,
                    "classes_dtype": self.classes_.dtype.str,
                    "feature_names_in": getattr(self, "feature_names_in_", np.array([])).tolist(),
                    "architecture": self._architecture(),
                    "method": self.method_,
                    "metric": self.metric_,
                    "normalizer": self.normalizer_.to_dict(),
                    "loss_curve": self.loss_curve_,
                },
                allow_nan=True,
            )
        except TypeError as error:
            raise EstimatorInputError(
                f"save() stores the classes as JSON; these cannot be ({error}): {classes[:5]!r}"
            ) from None
        tensors = {f"model.{k}": v for k, v in _cpu_state(self.model_).items()}
        tensors["scaler.mean"] = torch.from_numpy(np.asarray(self.scaler_.mean_, np.float64))
        tensors["scaler.scale"] = torch.from_numpy(np.asarray(self.scaler_.scale_, np.float64))
        tensors["normalizer"] = torch.tensor(
            [self.normalizer_.mean, self.normalizer_.std], dtype=torch.float64
        )
        try:
            return write_atomic(
                path, lambda tmp: save_file(tensors, str(tmp), metadata={FORMAT: header})
            )
        except OSError as error:
            reason = error.strerror or str(error)
            raise EstimatorFileError(f"cannot write {path}: {reason}") from None

    @classmethod
    def load(cls, path: str | PathLike[str]) -> TripletEmbedder:
        """A fitted estimator from a file written by ``save`` (nothing is unpickled)."""
        path = Path(path)
        if not path.is_file():
            raise EstimatorFileError(f"no TripletEmbedder file at {path}")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            if FORMAT not in metadata:
                raise EstimatorFileError(
                    f"{path} is a safetensors file but not one written by TripletEmbedder.save"
                )
            header = json.loads(metadata[FORMAT])
            tensors = load_file(str(path))
            try:
                return cls._restored(header, tensors)
            except EstimatorFileError as error:
                raise EstimatorFileError(f"{path}: {error}") from None
        except EstimatorFileError:
            raise
        except (
            SafetensorError,
            OSError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            RuntimeError,
        ) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise EstimatorFileError(
                f"{path} is not a readable TripletEmbedder file ({reason}); it may be truncated "
                "or written by something else: save the estimator again"
            ) from None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            state["model_"] = {
                "architecture": self._architecture(),
                "weights": save_tensors(_cpu_state(model)),
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        saved = state.pop("model_", None)
        super().__setstate__(state)
        if saved is not None:
            self.model_ = _rebuilt(saved["architecture"], load_tensors(saved["weights"]))

    # -- internals --------------------------------------------------------------------------

    def _check_params(self) -> str:
        """Refuse parameter values that cannot work (one line each); return the method."""
        if not isinstance(self.method, str) or self.method not in METHOD_NAMES:
            raise EstimatorInputError(
                f"method must be one of {', '.join(map(repr, METHOD_NAMES))}, got {self.method!r}"
            )
        if self.loss is not None:
            if self.method != "batch-mining":
                raise EstimatorInputError(
                    f"loss={self.loss!r} goes with method='batch-mining'; method='triplet' "
                    "trains Hoffer & Ailon's distance-ratio loss and takes no loss"
                )
            _method_options("batch-mining", {"loss": self.loss})
        for name, low in (("embedding_dim", 1), ("hidden", 1), ("depth", 0), ("epochs", 1)):
            _check_int(name, getattr(self, name), low)
        _check_int("batch_size", self.batch_size, 2)
        if self.triplets_per_epoch is not None:
            if self.method != "triplet":
                raise EstimatorInputError(
                    "triplets_per_epoch goes with method='triplet'; method='batch-mining' "
                    "passes over every sample once an epoch"
                )
            _check_int("triplets_per_epoch", self.triplets_per_epoch, 1)
        if self.lr is not None:
            _check_number("lr", self.lr, above=0.0)
        _check_number("dropout", self.dropout, at_least=0.0, below=1.0)
        if not isinstance(self.device, str):
            raise EstimatorInputError(
                f"device must be a string such as 'cpu', 'auto' or 'cuda:0', got {self.device!r}"
            )
        return self.method

    def _validate(self, X: Any, y: Any = None, reset: bool = False) -> Any:
        """scikit-learn's validation (numeric, finite, 2-D, at least one sample); its
        errors become one-line EstimatorInputErrors."""
        kwargs: dict[str, Any] = {"dtype": [np.float64, np.float32], "reset": reset}
        arrays = (X,) if y is None and not reset else (X, y)
        try:
            if _validate_data is not None:
                return _validate_data(self, *arrays, **kwargs)
            return self._validate_data(*arrays, **kwargs)  # pragma: no cover - scikit-learn < 1.6
        except (ValueError, TypeError) as error:
            message = str(error)
            if message.startswith("Expected 2D array"):
                shape = np.shape(X)
                message = (
                    f"X must be 2-D (n_samples, n_features), got an array of shape {shape}; "
                    "Reshape your data with X.reshape(-1, 1) for one feature or "
                    "X.reshape(1, -1) for one sample"
                )
            kind = EstimatorInputTypeError if isinstance(error, TypeError) else EstimatorInputError
            raise kind(" ".join(message.split())) from None

    def _standardized(self, X: np.ndarray) -> np.ndarray:
        """``X`` through the scaler and the normaliser, in float64."""
        scaled = (np.asarray(X, dtype=np.float64) - self.scaler_.mean_) / self.scaler_.scale_
        return (scaled - self.normalizer_.mean) / self.normalizer_.std

    def _train(
        self,
        name: str,
        scaled: np.ndarray,
        labels: np.ndarray,
        normalizer: Normalizer,
        device: torch.device,
        seed: int,
    ) -> tuple[EmbeddingNet, list[float], str]:
        """Build the net, the method, the pipeline and the optimiser; run the loop."""
        if name == "triplet":
            per_epoch = self.triplets_per_epoch or int(
                np.clip(TRIPLETS_PER_SAMPLE * len(labels), MIN_TRIPLETS, MAX_TRIPLETS)
            )
            values: dict[str, Any] = {"triplets_per_epoch": per_epoch}
        else:
            p = min(MAX_CLASSES_PER_BATCH, int(labels.max()) + 1)
            values = {
                "loss": self.loss or DEFAULT_LOSS,
                "classes_per_batch": p,
                "samples_per_class": max(2, self.batch_size // p),
            }
        kind, options = _method_options(name, values)
        metric = kind.metric(options)
        torch.manual_seed(seed)
        model = build_model(
            "mlp",
            (scaled.shape[1],),
            self.embedding_dim,
            normalize=metric == "cosine",
            hidden=self.hidden,
            depth=self.depth,
            dropout=self.dropout,
        ).to(device)
        context = MethodContext(
            labels, self.embedding_dim, (scaled.shape[1],), self.batch_size, seed
        )
        try:
            method = kind(options, context)
        except TripletnetError as error:
            raise EstimatorInputError(_parameter_message(error)) from None
        lr = float(self.lr) if self.lr is not None else DEFAULT_LR[name]
        optimisation = Optimisation(
            lr=lr,
            epochs=self.epochs,
            momentum=MOMENTUM,
            weight_decay=WEIGHT_DECAY,
            min_lr_fraction=MIN_LR_FRACTION,
        )
        training = assemble(
            model, method, optimisation, Pipeline(scaled, labels, normalizer, device)
        )
        losses: list[float] = []

        def on_epoch_end(epoch: int, row: dict[str, Any]) -> None:
            losses.append(float(row["loss"]))
            if self.verbose:
                error = row.get("triplet_error", math.nan)
                print(
                    f"epoch {epoch + 1}/{self.epochs}  loss {row['loss']:.4f}  "
                    f"triplet error {error:.4f}  ({row['seconds']:.1f} s)"
                )

        try:
            training.fit(range(self.epochs), on_epoch_end, seed, bool(self.verbose))
        except TrainingDiverged as error:
            raise TrainingDiverged(f"{error}; try a lower lr than {lr:g}") from None
        return model.cpu().eval(), losses, metric

    def _architecture(self) -> dict[str, Any]:
        """What rebuilds ``model_``: the MLP's sizes and its L2 normalisation."""
        layers = [m for m in self.model_.net if isinstance(m, torch.nn.Linear)]
        dropouts = [m.p for m in self.model_.net if isinstance(m, torch.nn.Dropout)]
        return {
            "in_features": int(layers[0].in_features),
            "embedding_dim": int(layers[-1].out_features),
            "hidden": int(layers[0].out_features) if len(layers) > 1 else int(self.hidden),
            "depth": len(layers) - 1,
            "dropout": float(dropouts[0]) if dropouts else 0.0,
            "normalize": bool(getattr(self.model_, "normalize", False)),
        }

    @classmethod
    def _restored(cls, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> TripletEmbedder:
        if header.get("version") != VERSION:
            raise EstimatorFileError(
                f"the file has format version {header.get('version')!r}; this tripletnet reads "
                f"version {VERSION}"
            )
        estimator = cls(**header["params"])
        try:
            estimator._check_params()
        except EstimatorInputError as error:
            raise EstimatorFileError(f"the file's parameters are invalid: {error}") from None
        weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        in_features = int(header["architecture"]["in_features"])
        if tensors["scaler.mean"].shape != (in_features,):
            raise EstimatorFileError(
                f"the file's scaler has shape {tuple(tensors['scaler.mean'].shape)} for a net "
                f"of {in_features} input features"
            )
        estimator.model_ = _rebuilt(header["architecture"], weights)
        scaler = StandardScaler()
        scaler.mean_ = tensors["scaler.mean"].numpy()
        scaler.scale_ = tensors["scaler.scale"].numpy()
        scaler.var_ = scaler.scale_**2
        scaler.n_features_in_ = len(scaler.mean_)
        scaler.n_samples_seen_ = 0
        estimator.scaler_ = scaler
        normalizer = header["normalizer"]
        mean, std = tensors["normalizer"].tolist()
        estimator.normalizer_ = Normalizer(mean, std, normalizer["low"], normalizer["high"])
        estimator.classes_ = np.asarray(header["classes"], dtype=np.dtype(header["classes_dtype"]))
        estimator.n_features_in_ = in_features
        if header["feature_names_in"]:
            estimator.feature_names_in_ = np.asarray(header["feature_names_in"], dtype=object)
        estimator.embedding_dim_ = int(header["architecture"]["embedding_dim"])
        estimator.method_ = header["method"]
        estimator.metric_ = header["metric"]
        estimator.loss_curve_ = list(header["loss_curve"])
        return estimator


def _method_options(name: str, values: dict[str, Any]) -> tuple[type[Method], Any]:
    """The registry's method class and its validated options, from the estimator's values."""
    try:
        kind = method_class(name)
        options = typed_options(name, values, "TripletEmbedder")
        kind.validate(options)
    except TripletnetError as error:
        raise EstimatorInputError(_parameter_message(error)) from None
    return kind, options


def _parameter_message(error: Exception) -> str:
    """The training layer's message, its command-line spelling (--loss) as parameters."""
    return " ".join(str(error).replace("--", "").split())


def _rebuilt(architecture: dict[str, Any], weights: dict[str, torch.Tensor]) -> EmbeddingNet:
    """The MLP that ``architecture`` describes, with ``weights``, in eval mode on the CPU."""
    model = build_model(
        "mlp",
        (int(architecture["in_features"]),),
        int(architecture["embedding_dim"]),
        normalize=bool(architecture["normalize"]),
        hidden=int(architecture["hidden"]),
        depth=int(architecture["depth"]),
        dropout=float(architecture["dropout"]),
    )
    model.load_state_dict(weights, strict=True)
    return model.eval()


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except TripletnetError as error:
        raise EstimatorInputError(str(error).replace("--device ", "device=")) from None


def _seed(random_state: Any) -> int:
    """An int seed: ``random_state`` itself when it is an int, else one drawn from it."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) % 2**32
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


@contextmanager
def _own_random_state(device: torch.device) -> Iterator[None]:
    """Run the block with torch's global generators (the CPU's, and the device's) saved and
    restored afterwards."""
    if device.type == "cpu":
        forked = torch.random.fork_rng(devices=[])
    else:
        forked = torch.random.fork_rng(devices=[device.index or 0], device_type=device.type)
    with forked:
        yield


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise EstimatorInputError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_number(
    name: str,
    value: Any,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
) -> None:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    ok = ok and (above is None or value > above) and (at_least is None or value >= at_least)
    ok = ok and (below is None or value < below)
    if not ok:
        bounds = [
            f"> {above}" if above is not None else "",
            f">= {at_least}" if at_least is not None else "",
            f"< {below}" if below is not None else "",
        ]
        raise EstimatorInputError(
            f"{name} must be a number {' and '.join(b for b in bounds if b)}, got {value!r}"
        )


__all__ = [
    "EstimatorFileError",
    "EstimatorInputError",
    "EstimatorInputTypeError",
    "TripletEmbedder",
]
