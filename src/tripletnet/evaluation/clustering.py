"""Clustering quality: NMI and AMI between the classes and a k-means of the embeddings.

k-means (FAISS, k = number of classes) groups the embeddings; NMI = I(Y; C) / mean(H(Y), H(C))
and AMI (chance-adjusted) compare the clusters C with the labels Y (scikit-learn's estimators).
"""

from __future__ import annotations

import faiss
import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from .inputs import require_classes


def kmeans_assign(
    x: np.ndarray, clusters: int, seed: int = 0, iterations: int = 20, restarts: int = 3
) -> np.ndarray:
    """Cluster id of each row of ``x`` after FAISS k-means with ``clusters`` centroids; the best
    of ``restarts`` runs (lowest within-cluster error) guards against a poor start."""
    kmeans = faiss.Kmeans(
        x.shape[1], clusters, niter=iterations, nredo=restarts, seed=seed, verbose=False
    )
    kmeans.train(np.ascontiguousarray(x, dtype=np.float32))
    _, assigned = kmeans.index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return assigned[:, 0]


def clustering_scores(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """NMI and AMI of a k-means of ``x`` (one cluster per class) against ``labels``."""
    require_classes(labels, 2, "clustering (NMI, AMI)")
    clusters = len(np.unique(labels))
    assigned = kmeans_assign(x, clusters, seed)
    return {
        "nmi": float(normalized_mutual_info_score(labels, assigned)),
        "ami": float(adjusted_mutual_info_score(labels, assigned)),
        "clusters": clusters,
    }
