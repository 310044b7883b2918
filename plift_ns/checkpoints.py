"""Loading our own checkpoints under torch >= 2.6 (``torch.load`` defaults to ``weights_only=True``)."""

from __future__ import annotations


def allow_trusted_checkpoints() -> None:
    """Register the plain types nerfstudio checkpoints of this method contain as safe for weights-only loading."""
