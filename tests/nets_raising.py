"""A factory that raises when called, for the bad-input catalogue (``--model nets_raising:build``)."""

from __future__ import annotations

from torch import nn


def build(width: int = 8) -> nn.Module:
    raise ValueError(f"no net of width {width} today")
