"""Loading our own checkpoints under torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``.

nerfstudio's ``ns-viewer``, ``ns-render``, ``ns-eval`` and ``--load-dir`` resume call ``torch.load`` without
``weights_only``. A checkpoint of this method holds tensors plus numpy scalars (learning-rate scheduler state), which
the weights-only unpickler refuses unless they are allow-listed. We allow-list exactly those plain numpy types — no
code objects — so the restricted loader keeps working and nothing falls back to full pickle.

Nothing is allow-listed at import: :func:`allow_trusted_checkpoints` is called explicitly where a checkpoint may be
loaded next — ``PanopticPipeline.__init__`` (nerfstudio's ``eval_setup`` and ``Trainer.setup`` build the pipeline
before ``torch.load``), ``PanopticTrainer._load_checkpoint`` and the plift-* commands that load a run.
"""

from __future__ import annotations

import numpy as np
import torch


def _numpy_scalar_types() -> list:
    types: list = [np.dtype]
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    types.append(scalar)
    for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType"):
        dtype_class = getattr(np.dtypes, name, None)
        if dtype_class is not None:
            types.append(dtype_class)
    return types


def allow_trusted_checkpoints() -> None:
    """Allow-list the numpy scalar types found in nerfstudio checkpoints for weights-only ``torch.load``."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:
        add(_numpy_scalar_types())
