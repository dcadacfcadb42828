"""``--init RUN``: start training from the weights of an earlier (e.g. pretrained) run."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import RunFolderError
from ..runs import MODEL, ModelSpec, load_checkpoint, read_spec


def load_pretrained(
    model: nn.Module, run_dir: str | Path, spec: ModelSpec, trust_model_code: bool | None = None
) -> None:
    """Copy the finished run's weights into ``model``, whose ``spec`` must match the run's. The
    run's net is rebuilt first: a ``package.module:factory`` one only with ``trust_model_code``
    (None: the variable TRIPLETNET_TRUST_MODEL_CODE), as for any run loaded."""
    weights = Path(run_dir) / MODEL
    if not weights.is_file():
        raise RunFolderError(f"--init {run_dir}: no {MODEL} there; is it a finished run?")
    saved = read_spec(weights)
    # before anything else, so that its code is refused first; older specs: the net's defaults
    layers = saved.build(trust_model_code, f"--init {run_dir}").layer_options()
    for key in ("architecture", "input_shape", "embedding_dim", "factory_args"):
        if getattr(saved, key) != getattr(spec, key):
            raise RunFolderError(
                f"--init {run_dir}: its {key} is {getattr(saved, key)!r} but this run's is "
                f"{getattr(spec, key)!r}; pass the same --dataset, --model, --embedding-dim and "
                "--factory-args as the pretraining"
            )
    if layers != spec.net_options:
        raise RunFolderError(
            f"--init {run_dir}: its layer options are {layers} but this run's are "
            f"{spec.net_options}; pass the same --final-relu and --batch-norm as the pretraining"
        )
    load_checkpoint(weights, model)
