"""The linear probe in torch, on the evaluation's device: multinomial logistic regression on
standardised features, fit by full-batch L-BFGS (scipy's L-BFGS-B, as scikit-learn's ``lbfgs``
solver; the loss and its gradient computed by torch on the device).

The objective is scikit-learn's ``LogisticRegression(C)`` one (``lbfgs`` solver), divided by the
number of samples n:  (1/n) sum_i CE(W x_i + b, y_i) + ||W||^2 / (2 C n), the intercept b
unpenalised; features standardised as ``StandardScaler`` does ((x - mean) / std, a constant
feature left unscaled). Two classes use one weight vector (the binomial loss), as scikit-learn
does. The probe is Hoffer & Ailon's protocol: a 1-layer linear classifier on the embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from sklearn.model_selection import StratifiedKFold

from .inputs import require_classes
from .neighbours import as_rows, eval_device

C = 1.0  # inverse regularisation strength, scikit-learn's default
MAX_ITER = 300  # L-BFGS iterations, as the scikit-learn probe had
TOLERANCE = 1e-4  # stop when every gradient entry is below this (scikit-learn's tol)


@dataclass
class LinearProbe:
    """A fitted probe: standardisation, weights (D, K or 1), intercepts and the class labels."""

    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    classes: np.ndarray

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = ((x - self.mean) / self.scale) @ self.weight + self.bias
        return torch.cat([torch.zeros_like(z), z], 1) if z.shape[1] == 1 else z

    def predict(self, x: Any) -> np.ndarray:
        rows = as_rows(x, self.weight.device).to(self.weight.dtype)
        return self.classes[self.logits(rows).argmax(1).cpu().numpy()]


def fit_linear_probe(
    x: Any,
    y: np.ndarray,
    c: float = C,
    max_iter: int = MAX_ITER,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> LinearProbe:
    """Fit the probe (module docstring) on rows ``x`` and labels ``y``, in ``dtype`` (float32:
    a third of float64's CPU time on MNIST pixels, the same accuracy in the tests)."""
    require_classes(y, 2, "the linear probe (logistic regression)")
    device = eval_device(device)
    rows = as_rows(x, device).to(dtype)
    classes, target = np.unique(np.asarray(y), return_inverse=True)
    targets = torch.as_tensor(target, device=device)
    mean = rows.mean(0)
    scale = rows.std(0, correction=0)
    scale = torch.where(scale > 10 * torch.finfo(scale.dtype).eps, scale, 1.0)
    z = (rows - mean) / scale
    columns = 1 if len(classes) == 2 else len(classes)
    penalty = 1.0 / (2.0 * c * len(z))
    shape = (columns, rows.shape[1])  # (K, D) for F.linear, whose gradient is logits^T z

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss and its gradient at the flat parameters (weight, then bias)."""
        params = torch.as_tensor(theta, device=device, dtype=dtype).requires_grad_(True)
        weight, bias = params[: shape[0] * shape[1]].view(shape), params[shape[0] * shape[1] :]
        with torch.enable_grad():
            logits = F.linear(z, weight, bias)
            if columns == 1:
                data = F.binary_cross_entropy_with_logits(logits[:, 0], targets.to(dtype))
            else:
                data = F.cross_entropy(logits, targets)
            loss = data + penalty * (weight * weight).sum()
            (gradient,) = torch.autograd.grad(loss, params)
        return float(loss.detach()), gradient.double().cpu().numpy()

    # scipy's L-BFGS-B with scikit-learn's settings (torch.optim would import torch._dynamo:
    # over a second on the CPU, for a 1,290-parameter problem)
    fitted = minimize(
        objective,
        np.zeros(shape[0] * shape[1] + columns),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": TOLERANCE, "ftol": 64 * np.finfo(float).eps},
    )
    theta = torch.as_tensor(fitted.x, device=device, dtype=dtype)
    weight = theta[: shape[0] * shape[1]].view(shape)
    return LinearProbe(mean, scale, weight.T, theta[shape[0] * shape[1] :], classes)


def linear_probe_correct(
    train_x: Any,
    train_y: np.ndarray,
    test_x: Any,
    test_y: np.ndarray,
    max_iter: int = MAX_ITER,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Per test sample: is the probe fit on the train samples right."""
    probe = fit_linear_probe(train_x, train_y, max_iter=max_iter, device=device)
    return np.asarray(probe.predict(test_x) == np.asarray(test_y))


def linear_probe_accuracy(
    train_x: Any, train_y: np.ndarray, test_x: Any, test_y: np.ndarray, **options: Any
) -> float:
    """Test accuracy of the probe fit on the train samples (``options``: ``max_iter``,
    ``device``)."""
    return float(linear_probe_correct(train_x, train_y, test_x, test_y, **options).mean())


def linear_probe_cross_validated(
    x: Any,
    y: np.ndarray,
    folds: int = 5,
    max_iter: int = MAX_ITER,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Per sample correctness of the probe when one set is both train and test: each sample is
    predicted by a probe fit on the other folds (stratified, shuffled with ``seed``)."""
    y = np.asarray(y)
    require_classes(y, 2, "the linear probe (logistic regression)")
    folds = max(2, min(folds, int(np.unique(y, return_counts=True)[1].min())))
    rows = as_rows(x, eval_device(device))
    correct = np.empty(len(y), dtype=bool)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(y)), y):
        probe = fit_linear_probe(rows[train], y[train], max_iter=max_iter, device=rows.device)
        correct[test] = probe.predict(rows[test]) == y[test]
    return correct
