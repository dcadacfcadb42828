"""``--precision``: the dtype the net's forward runs in under ``torch.autocast``.

fp32: none (float32 throughout). bf16: bfloat16 autocast (float32's range: no loss scaling).
fp16: float16 autocast with a GradScaler (``training.step``) so that small gradients do not
underflow (Micikevicius et al. 2018, "Mixed precision training"). auto: bf16 on a GPU that
supports it, fp16 on an older GPU, fp32 elsewhere. The net returns float32 embeddings
(``EmbeddingNet.run``), so the losses and the evaluation stay in float32.
"""

from __future__ import annotations

import torch

from ..errors import TripletnetError

DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: float32)."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision not in DTYPES:
        raise TripletnetError(f"unknown --precision {precision!r}; choose fp32, bf16, fp16 or auto")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TripletnetError(
            f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16; "
            "use --precision fp16 (float16 with gradient scaling) or auto"
        )
    return DTYPES[precision]
