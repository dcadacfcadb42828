"""Evaluation: classify, measure, plot and report, on embeddings or on a run folder."""

from .classify import knn_accuracy, knn_predict
from .evaluate import Evaluation, evaluate_embeddings, evaluate_shard
from .probe import linear_probe_accuracy
from .triplet_error import triplet_error

__all__ = [
    "Evaluation",
    "evaluate_embeddings",
    "evaluate_shard",
    "knn_accuracy",
    "knn_predict",
    "linear_probe_accuracy",
    "triplet_error",
]
