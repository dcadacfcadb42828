"""The pipeline's device paths: data resident on the device, pinned staging for a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tripletnet.data import Normalizer
from tripletnet.training import pipeline as pipeline_module
from tripletnet.training.pipeline import PinnedStaging, Pipeline


def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 1, 6, 6), dtype=np.uint8), np.arange(40) % 4


def batches() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 40, size) for size in (12, 7, 12)]


def prepared(pipe: Pipeline) -> list[torch.Tensor]:
    return [batch for _, batch in pipe.epoch(batches())]


def test_a_resident_dataset_gives_the_batches_of_a_host_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = images()
    normalizer = Normalizer.fit(x)
    host = Pipeline(x, y, normalizer, torch.device("cpu"))
    assert not host.resident
    monkeypatch.setattr(pipeline_module, "fits_on", lambda device, nbytes: True)
    resident = Pipeline(x, y, normalizer, torch.device("cpu"))  # the GPU path, run on the CPU
    assert resident.resident and resident.tensor.dtype == torch.uint8  # moved as it is
    for a, b in zip(prepared(host), prepared(resident), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert list(resident.epoch([])) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pinned_staging_gathers_the_same_rows() -> None:
    source = torch.arange(600, dtype=torch.float32).reshape(100, 6)
    staging = PinnedStaging(torch.device("cuda"))
    for size in (10, 30, 5, 30):
        rows = torch.randint(0, 100, (size,))
        torch.testing.assert_close(staging(source, rows).cpu(), source[rows])
