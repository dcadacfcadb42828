"""The linear probe in torch, on the evaluation's device: multinomial logistic regression on
standardised features, fit by full-batch L-BFGS (scipy's L-BFGS-B, as scikit-learn's ``lbfgs``
solver; the loss and its gradient computed by torch on the device), preconditioned by the
features' correlations (``_preconditioner``: the same optimum in fewer iterations).

The objective is scikit-learn's ``LogisticRegression(C)`` one (``lbfgs`` solver), divided by the
number of samples n:  (1/n) sum_i CE(W x_i + b, y_i) + ||W||^2 / (2 C n), the intercept b
unpenalised; features standardised as ``StandardScaler`` does ((x - mean) / std, a constant
feature left unscaled). Two classes use one weight vector (the binomial loss), as scikit-learn
does. The probe is Hoffer & Ailon's protocol: a 1-layer linear classifier on the embeddings.

A constant feature (standardised to 0 in every sample) has a zero weight at the optimum, and
L-BFGS started at zero never moves it: it is left out of the fit (MNIST's 67 always-black pixels
of 784), and its weight is 0. On the CPU the fit runs on one torch thread: its (K, D) x (D, n)
products are memory-bound, and two threads took twice the time of one on a 2-core machine
(``bench/evaluation.py --cases evaluate``), while one leaves the other core to work beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from threading import Lock
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from sklearn.model_selection import StratifiedKFold

from ..collective import gathered, summed
from ..world import SINGLE, World
from .inputs import require_classes
from .neighbours import as_rows, eval_device

C = 1.0  # inverse regularisation strength, scikit-learn's default
MAX_ITER = 300  # L-BFGS iterations, as the scikit-learn probe had
TOLERANCE = 1e-4  # stop when every gradient entry is below this (scikit-learn's tol)
RIDGE = 0.1  # the preconditioner's ridge, in units of a standardised feature's variance


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
    world: World = SINGLE,
) -> LinearProbe:
    """Fit the probe (module docstring) on rows ``x`` and labels ``y``, in ``dtype`` (float32:
    a third of float64's CPU time on MNIST pixels, the same accuracy in the tests).

    In a job each process gives its own share of the samples: the standardisation's sums and
    each evaluation's loss and gradient sums are all-reduced, so every process takes the same
    L-BFGS steps and gets the same probe."""
    classes = np.unique(np.concatenate(gathered(world, np.unique(np.asarray(y)))))
    require_classes(classes, 2, "the linear probe (logistic regression)")
    device = eval_device(device)
    rows = as_rows(x, device).to(dtype)
    with one_cpu_thread(device):
        return _fit(rows, np.asarray(y), classes, c, max_iter, device, dtype, world)


_THREADS_LOCK = Lock()
_held: list[int] = []  # the thread count to restore, while a fit holds one thread


@contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """torch's CPU work on one thread inside (module docstring); other devices as they are.
    Fits in several Python threads at once restore the count once the last one ends."""
    if device.type != "cpu":
        yield
        return
    with _THREADS_LOCK:
        _held.append(_held[0] if _held else torch.get_num_threads())
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            threads = _held.pop()
            if not _held:
                torch.set_num_threads(threads)


def _fit(
    rows: torch.Tensor,
    y: np.ndarray,
    classes: np.ndarray,
    c: float,
    max_iter: int,
    device: torch.device,
    dtype: torch.dtype,
    world: World,
) -> LinearProbe:
    """``fit_linear_probe`` of (n, D) rows already on the device in ``dtype``; ``classes``:
    every process's labels."""
    targets = torch.as_tensor(np.searchsorted(classes, y), device=device)
    n = len(rows) if not world.distributed else int(summed(world, np.array([len(rows)]))[0])
    mean, scale = _moments(rows, n, world)
    varying = scale > 10 * torch.finfo(scale.dtype).eps
    scale = torch.where(varying, scale, 1.0)
    fitted_features = varying.nonzero()[:, 0]  # a constant feature keeps a zero weight
    z_by_feature = ((rows[:, fitted_features] - mean[fitted_features]) / scale[fitted_features]).T
    z_by_feature = z_by_feature.contiguous()  # (D, n): reductions run along rows
    columns = 1 if len(classes) == 2 else len(classes)
    penalty = 1.0 / (2.0 * c * n)
    shape = (columns, len(fitted_features))  # (K, D): the logits come out as (K, n)

    inverse_factor = _preconditioner(z_by_feature, n, world)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss and its gradient at the flat parameters (V, then the bias; W = V L^-1)."""
        params = torch.as_tensor(theta, device=device, dtype=dtype)
        v, bias = params[: shape[0] * shape[1]].view(shape), params[shape[0] * shape[1] :]
        # the penalty once, on rank 0: the ranks' losses and gradients add up to the whole's
        own_penalty = penalty if world.main else 0.0
        loss, grad_weight, grad_bias = probe_loss(
            z_by_feature, targets, v @ inverse_factor, bias, own_penalty, n
        )
        grad_v = grad_weight @ inverse_factor.T  # dF/dV = dF/dW L^-T
        grad = torch.cat([grad_v.reshape(-1), grad_bias]).double().cpu().numpy()
        if not world.distributed:
            return loss, grad
        both = summed(world, np.concatenate([[loss], grad]))
        return float(both[0]), both[1:]

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
    weight = torch.zeros(rows.shape[1], columns, device=device, dtype=dtype)
    weight[fitted_features] = (theta[: shape[0] * shape[1]].view(shape) @ inverse_factor).T
    return LinearProbe(mean, scale, weight, theta[shape[0] * shape[1] :], classes)


def _preconditioner(z_by_feature: torch.Tensor, n: int, world: World) -> torch.Tensor:
    """L^-1, where L L^T = Z Z^T / n + RIDGE I is the Cholesky factor of the standardised
    features' correlation matrix, ridged (every process's samples).

    L-BFGS then works on V = W L: the same objective, the same optimum and predictions
    (W z = V L^-1 z), but a Hessian near a multiple of I where the data term's (about
    Z diag(p (1 - p)) Z^T / n) follows the correlations: on MNIST's raw pixels 94 iterations
    instead of 182 to scikit-learn's tolerance, a lower objective, the test accuracy 0.07 point
    from the unpreconditioned fit's."""
    gram = (z_by_feature @ z_by_feature.T).double()
    if world.distributed:
        gram = torch.as_tensor(summed(world, gram.cpu().numpy()), device=gram.device)
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    factor = torch.linalg.cholesky(gram / n + RIDGE * eye)
    inverse = torch.linalg.solve_triangular(factor, eye, upper=False)
    return inverse.to(z_by_feature.dtype)


def _moments(rows: torch.Tensor, n: int, world: World) -> tuple[torch.Tensor, torch.Tensor]:
    """Each feature's mean and standard deviation over the ``n`` samples of every process:
    mean = sum x / n, std = sqrt(sum (x - mean)^2 / n)."""
    if not world.distributed:
        return rows.mean(0), rows.std(0, correction=0)
    local = rows.double().sum(0).cpu().numpy()
    mean = torch.as_tensor(summed(world, local) / n, device=rows.device)
    spread = ((rows.double() - mean) ** 2).sum(0).cpu().numpy()
    std = torch.as_tensor(np.sqrt(summed(world, spread) / n), device=rows.device)
    return mean.to(rows.dtype), std.to(rows.dtype)


def probe_loss(
    z_by_feature: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    penalty: float,
    samples: int | None = None,
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """The probe's objective (module docstring) and its gradients (weight, bias), by hand:
    with logits L = W z + b, the softmax P and one-hot targets Y, (1/n) sum_i (logsumexp(L_i) -
    L_i,y_i) + penalty ||W||^2, whose gradient is (P - Y) z^T / n + 2 penalty W. One weight row
    (two classes) is the binomial loss: the softmax over logits (0, L). Computed on (K, n)
    logits: the whole probe about 1.5x faster on the CPU than autograd through
    ``F.cross_entropy`` on (n, K) (``bench/evaluation.py --cases stages``). ``samples``: n
    (default: the targets'; more where these are one process's share of them)."""
    n = len(targets) if samples is None else samples
    logits = torch.addmm(bias[:, None], weight, z_by_feature)
    if len(weight) == 1:
        logits = torch.cat([torch.zeros_like(logits), logits])
    shifted = logits - logits.amax(0)
    probs = shifted.exp()
    total = probs.sum(0)
    data = (total.log() - shifted.gather(0, targets[None])[0]).sum() / n
    probs.div_(total).scatter_add_(0, targets[None], torch.full_like(probs[:1], -1.0))
    residual = (probs[1:] if len(weight) == 1 else probs).div_(n)  # d loss / d L
    grad_weight = torch.addmm(weight, residual, z_by_feature.T, beta=2.0 * penalty)
    loss = float(data + penalty * (weight * weight).sum())
    return loss, grad_weight, residual.sum(1)


def linear_probe_correct(
    train_x: Any,
    train_y: np.ndarray,
    test_x: Any,
    test_y: np.ndarray,
    max_iter: int = MAX_ITER,
    device: torch.device | str | None = None,
    world: World = SINGLE,
) -> np.ndarray:
    """Per test sample: is the probe fit on the train samples right (in a job: each process
    gives its share of the train samples, ``fit_linear_probe``)."""
    probe = fit_linear_probe(train_x, train_y, max_iter=max_iter, device=device, world=world)
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
