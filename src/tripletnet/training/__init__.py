"""Training: the configuration, the methods (a registry), the pipeline, the loop, ``train``
and ``train_and_evaluate`` (what ``tripletnet train`` does)."""

from ..runs import TrainedRun, load_run
from .config import TrainConfig
from .fit import TrainingDiverged, fit
from .job import train_and_evaluate
from .methods import METHODS, Method
from .run import train

__all__ = [
    "METHODS",
    "Method",
    "TrainConfig",
    "TrainedRun",
    "TrainingDiverged",
    "fit",
    "load_run",
    "train",
    "train_and_evaluate",
]
