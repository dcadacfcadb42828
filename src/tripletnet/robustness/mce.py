"""The Corruption Error and its mean, as Hendrycks & Dietterich (ICLR 2019) define them.

For a model f, a corruption c and severities s = 1..5, with E the top-1 error:

    CE_c^f = sum_s E_{s,c}^f / sum_s E_{s,c}^base                      mCE = mean_c CE_c^f
    relative CE_c^f = sum_s (E_{s,c}^f - E_clean^f) / sum_s (E_{s,c}^base - E_clean^base)

where ``base`` is the baseline model (AlexNet in the paper; here the raw-pixel k-NN or another
run). A corruption whose baseline sum is zero (or, for the relative CE, not above zero) has no
defined CE and is left out of the mean, and named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

Errors = Mapping[str, Sequence[float]]  # corruption -> the error at severities 1..5


def corruption_errors(
    errors: Errors, clean: float, baseline: Errors, baseline_clean: float
) -> dict[str, Any]:
    """Per corruption CE and relative CE (None where undefined), the mCE, the relative mCE and
    the corruptions left out of each mean."""
    ce: dict[str, float | None] = {}
    relative: dict[str, float | None] = {}
    for name, row in errors.items():
        base = baseline[name]
        below = sum(base)
        ce[name] = sum(row) / below if below > 0 else None
        gap = sum(e - baseline_clean for e in base)
        relative[name] = sum(e - clean for e in row) / gap if gap > 0 else None
    return {
        "ce": ce,
        "relative_ce": relative,
        "mce": _mean(ce),
        "relative_mce": _mean(relative),
        "undefined_ce": sorted(n for n, v in ce.items() if v is None),
        "undefined_relative_ce": sorted(n for n, v in relative.items() if v is None),
    }


def _mean(values: Mapping[str, float | None]) -> float:
    defined = [v for v in values.values() if v is not None]
    return sum(defined) / len(defined) if defined else math.nan
