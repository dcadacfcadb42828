"""Classification from embeddings: the paper's linear classifier and k-NN."""

from __future__ import annotations

import warnings

import faiss
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    max_iter: int = 300,
) -> float:
    """Accuracy of a linear (logistic-regression) classifier fit on standardised train features.

    This is Hoffer & Ailon's protocol: a 1-layer linear classifier on the train embeddings.
    """
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(_flat(train_x), train_y)
    return float((classifier.predict(_flat(test_x)) == test_y).mean())


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int) -> np.ndarray:
    """Majority vote of the ``k`` nearest train samples (L2, exact FAISS search); ties go to
    the class whose members are nearer."""
    train, test = _flat(train_x), _flat(test_x)
    k = min(k, len(train))
    index = faiss.IndexFlatL2(train.shape[1])
    index.add(train)
    _, neighbours = index.search(test, k)
    votes = np.zeros((len(test), int(train_y.max()) + 1))
    rank_weight = 1.0 + 1e-6 * (k - np.arange(k))  # a whole vote each, nearer breaks ties
    np.add.at(votes, (np.arange(len(test))[:, None], train_y[neighbours]), rank_weight)
    return votes.argmax(axis=1)


def knn_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 5
) -> float:
    return float((knn_predict(train_x, train_y, test_x, k) == test_y).mean())


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
