"""Training: the configuration, the methods (a registry), the pipeline, the loop, ``train``
and ``train_and_evaluate`` (what ``tripletnet train`` does).

The parts are imported when first used (``lazy_exports``): the methods' options
(``training.method_options``, what ``tripletnet train --help`` is made from) need no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
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
WHERE = {
    **dict.fromkeys(("TrainedRun", "load_run"), "..runs"),
    "TrainConfig": ".config",
    **dict.fromkeys(("TrainingDiverged", "fit"), ".fit"),
    "train_and_evaluate": ".job",
    **dict.fromkeys(("METHODS", "Method"), ".methods"),
    "train": ".run",
}
__getattr__ = lazy_exports(__name__, WHERE)
