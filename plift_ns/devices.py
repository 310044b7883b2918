"""Device choice shared by training, labelling and benchmarks: never hard-coded, CUDA when available."""

from __future__ import annotations

import torch


def default_device(allow_mps: bool = False) -> torch.device:
    """CUDA when available, then (with ``allow_mps``) Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if allow_mps and mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
