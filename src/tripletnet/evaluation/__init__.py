"""Evaluation: embed, classify, measure, plot and report."""

from .classify import knn_accuracy, knn_predict, linear_probe_accuracy
from .embed import embed
from .triplet_error import triplet_error

__all__ = ["embed", "knn_accuracy", "knn_predict", "linear_probe_accuracy", "triplet_error"]
