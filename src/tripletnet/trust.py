"""Whether loading a run may run the model code it names (torch-free, for the CLI and the service).

A run folder (or a checkpoint, or a model file) records its network's architecture. When that is
``package.module:factory``, rebuilding the net imports the module and calls the factory: code
from wherever the run came from. Like Hugging Face's ``trust_remote_code``, that needs an
explicit yes: ``trust_model_code=True``, the environment variable ``TRIPLETNET_TRUST_MODEL_CODE=1``
(which ``tripletnet serve``'s worker processes inherit) or the CLI's ``--trust-model-code``.
Built-in nets and ``timm:NAME`` run no code from the run; weights are safetensors, never unpickled.
"""

from __future__ import annotations

import os

TRUST_VARIABLE = "TRIPLETNET_TRUST_MODEL_CODE"
TRUST_FLAG = "--trust-model-code"
_YES = ("1", "true", "yes", "on")


def trusts_model_code(trust_model_code: bool | None = None) -> bool:
    """``trust_model_code`` when given, else whether TRIPLETNET_TRUST_MODEL_CODE says yes
    (1, true, yes or on)."""
    if trust_model_code is not None:
        return trust_model_code
    return os.environ.get(TRUST_VARIABLE, "").strip().lower() in _YES


__all__ = ["TRUST_FLAG", "TRUST_VARIABLE", "trusts_model_code"]
