"""Training: the configuration, the methods (a registry), the pipeline, the loop and ``train``."""

from ..runs import TrainedRun, load_run
from .config import TrainConfig
from .fit import TrainingDiverged, fit
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
]
