"""Training: configuration, methods, the loop, checkpoints and run folders."""

from .config import TrainConfig
from .run_folder import TrainedRun, load_run
from .trainer import TrainingDiverged, train

__all__ = ["TrainConfig", "TrainedRun", "TrainingDiverged", "load_run", "train"]
