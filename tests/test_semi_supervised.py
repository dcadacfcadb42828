"""Semi-supervised metric embedding: the loss against loops, the labelled subset, the batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tripletnet.errors import TripletnetError
from tripletnet.losses.semi_supervised import semi_supervised_loss
from tripletnet.training.methods import MethodContext
from tripletnet.training.methods.semi_supervised import (
    SemiSupervised,
    SemiSupervisedOptions,
    labelled_subset,
)
from tripletnet.training.methods.spatial_contrasting import (
    SpatialContrasting,
    SpatialContrastingOptions,
)
from tripletnet.training.schedule import plateau_lr, step_lr


def probabilities(x: torch.Tensor, references: torch.Tensor) -> list[float]:
    weights = [math.exp(-math.dist(x.tolist(), z.tolist())) for z in references]
    return [w / sum(weights) for w in weights]


@pytest.mark.parametrize("weight", [0.0, 1.0, 0.3])
def test_loss_matches_brute_force_loop(weight: float) -> None:
    generator = torch.Generator().manual_seed(0)
    references = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    labelled = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    targets = torch.tensor([0, 3, 1, 1, 2])
    unlabelled = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    cross_entropy = -sum(
        math.log(probabilities(x, references)[int(t)])
        for x, t in zip(labelled, targets, strict=True)
    ) / len(labelled)
    entropy = -sum(p * math.log(p) for x in unlabelled for p in probabilities(x, references)) / len(
        unlabelled
    )
    loss = semi_supervised_loss(labelled, targets, unlabelled, references, weight)
    assert loss.item() == pytest.approx(cross_entropy + weight * entropy, rel=1e-9)


def test_no_unlabelled_samples_leave_the_labelled_loss() -> None:
    references, labelled = torch.randn(3, 2), torch.randn(4, 2)
    targets = torch.tensor([0, 1, 2, 0])
    alone = semi_supervised_loss(labelled, targets, torch.zeros(0, 2), references)
    assert torch.isfinite(alone)


def test_identical_embeddings_give_finite_gradients() -> None:
    everything = torch.zeros(10, 4, requires_grad=True)
    loss = semi_supervised_loss(
        everything[:3], torch.tensor([0, 1, 2]), everything[3:7], everything[7:]
    )
    loss.backward()
    assert torch.isfinite(loss) and everything.grad is not None
    assert torch.isfinite(everything.grad).all()
    assert loss.item() == pytest.approx(2 * math.log(3), rel=1e-5)  # uniform over 3 classes


def test_loss_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="targets"):
        semi_supervised_loss(torch.zeros(3, 2), torch.tensor([0]), torch.zeros(0, 2), torch.eye(2))
    with pytest.raises(ValueError, match="references"):
        semi_supervised_loss(
            torch.zeros(1, 2), torch.tensor([0]), torch.zeros(0, 2), torch.eye(2)[:1]
        )


LABELS = np.repeat(np.arange(4), [7, 5, 9, 6])


def test_labelled_subset_is_seeded_and_balanced() -> None:
    subset = labelled_subset(LABELS, 3, seed=0)
    assert np.array_equal(np.bincount(LABELS[subset]), [3, 3, 3, 3])
    assert np.array_equal(subset, labelled_subset(LABELS, 3, seed=0))
    assert not np.array_equal(subset, labelled_subset(LABELS, 3, seed=1))
    assert np.array_equal(labelled_subset(LABELS, None, seed=0), np.arange(len(LABELS)))
    with pytest.raises(TripletnetError, match="at most 5"):
        labelled_subset(LABELS, 6, seed=0)


def context(labels: np.ndarray = LABELS, seed: int = 0) -> MethodContext:
    return MethodContext(labels, embedding_dim=3, input_shape=(2,), batch_size=10, seed=seed)


def method(per_class: int, weight: float = 1.0, seed: int = 0) -> SemiSupervised:
    options = SemiSupervisedOptions(labels_per_class=per_class, unlabelled_weight=weight)
    return SemiSupervised(options, context(seed=seed))


def test_labels_seed_fixes_the_labelled_samples_and_leaves_the_training_draws_to_seed() -> None:
    options = SemiSupervisedOptions(labels_per_class=3, labels_seed=1)
    fixed = [SemiSupervised(options, context(seed=seed)) for seed in (0, 2)]
    assert np.array_equal(fixed[0].labelled, method(per_class=3, seed=1).labelled)
    assert np.array_equal(fixed[0].labelled, fixed[1].labelled)
    orders = [np.concatenate(list(semi.batches(epoch=0))) for semi in fixed]
    assert not np.array_equal(*orders)  # the batches still follow --seed


def test_batches_hold_unlabelled_then_one_input_and_one_reference_per_class() -> None:
    semi = method(per_class=3)
    pool = set(semi.labelled.tolist())
    batches = list(semi.batches(epoch=0))
    assert len(batches) == semi.num_batches() == 3
    unlabelled = np.concatenate([batch[:-8] for batch in batches])
    assert np.array_equal(np.sort(unlabelled), np.arange(len(LABELS)))  # each image once
    for batch in batches:
        inputs, references = batch[-8:-4], batch[-4:]
        assert np.array_equal(LABELS[inputs], np.arange(4))
        assert np.array_equal(LABELS[references], np.arange(4))
        assert set(inputs) <= pool and set(references) <= pool
        assert (inputs != references).all()  # distinct, since every class has 3 labels
    drawn = {int(i) for batch in batches for i in batch[-8:]}
    assert len(drawn) > 4  # drawn afresh each batch, not fixed
    again = list(method(per_class=3).batches(epoch=0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))  # seeded
    assert not np.array_equal(batches[0], next(method(per_class=3).batches(epoch=1)))


def test_one_label_per_class_uses_it_as_input_and_reference() -> None:
    batch = next(method(per_class=1).batches(epoch=0))
    assert np.array_equal(batch[-8:-4], batch[-4:])


def test_steps_per_epoch_caps_the_batches() -> None:
    semi = SemiSupervised(SemiSupervisedOptions(labels_per_class=3, steps_per_epoch=2), context())
    batches = list(semi.batches(epoch=0))
    assert semi.num_batches() == len(batches) == 2 and all(len(b) == 18 for b in batches)
    sc = SpatialContrasting(SpatialContrastingOptions(steps_per_epoch=9), context())
    assert sc.num_batches() == len(list(sc.batches(epoch=0))) == 3  # a full pass is shorter
    sc = SpatialContrasting(SpatialContrastingOptions(steps_per_epoch=2), context(np.zeros(21)))
    assert sc.num_batches() == len(list(sc.batches(epoch=0))) == 2  # 10 + 10, never one image


def test_labels_alone_batches_carry_no_unlabelled_image() -> None:
    batches = list(method(per_class=2, weight=0.0).batches(epoch=0))
    assert all(len(batch) == 8 for batch in batches)


def test_loss_splits_the_batch_and_trains() -> None:
    semi = method(per_class=3)
    model = torch.nn.Linear(2, 3)
    features = torch.randn(len(LABELS), 2)
    batch = next(semi.batches(epoch=0))
    loss, stats = semi.loss(model, batch, features[torch.from_numpy(batch)])
    loss.backward()
    assert torch.isfinite(loss) and 0.0 <= stats["triplet_error"] <= 1.0
    assert model.weight.grad is not None


def test_plateau_schedule_divides_by_ten_when_the_loss_stops_falling() -> None:
    assert plateau_lr(0.1, [], 0.01) == 0.1
    assert plateau_lr(0.1, [3.0, 2.0, 1.0], 0.01) == 0.1
    assert plateau_lr(0.1, [3.0, 2.0, 2.0], 0.01) == pytest.approx(0.01)
    assert plateau_lr(0.1, [3.0, 3.0, 3.0, 3.0], 0.01) == pytest.approx(0.001)  # the floor


def test_step_schedule_follows_the_authors_regime() -> None:
    """Their regime {epoch 1: 0.1, 30: 0.01, 60: 1e-3, ...}: epoch 30 (index 29) is the first
    at 0.01."""
    rates = [step_lr(0.1, epoch, [30, 60, 90, 120]) for epoch in range(150)]
    assert rates[0] == rates[28] == 0.1
    assert rates[29] == pytest.approx(0.01) and rates[58] == pytest.approx(0.01)
    assert rates[59] == pytest.approx(1e-3) and rates[149] == pytest.approx(1e-5)
