"""The query-segmenter protocol: an image in, per-query class distributions and soft masks out (before panoptic fusion).

Mask-classification networks (Mask2Former, OneFormer, EoMT) predict ``Q`` candidate segments per image: a class
distribution over ``C`` classes plus a "no object" class, and a soft mask. Panoptic Lifting (supp. A) intercepts them
*before* the network's own panoptic fusion, so every backend of ``plift-labels`` implements :class:`QuerySegmenter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import torch
from torch import Tensor


@dataclass
class QueryPrediction:
    """Candidate segments of one image."""

    class_probs: Tensor
    """(Q, C + 1) class distributions (softmax); the last column is "no object"."""
    mask_probs: Tensor
    """(Q, H, W) sigmoid soft masks over the whole image given to the segmenter, at its resolution unless another
    mask size was asked for."""

    def __post_init__(self) -> None:
        if self.class_probs.ndim != 2 or self.mask_probs.ndim != 3:
            raise ValueError(
                f"class_probs must be (Q, C+1) and mask_probs (Q, H, W); got {tuple(self.class_probs.shape)} and "
                f"{tuple(self.mask_probs.shape)}"
            )
        if self.class_probs.shape[0] != self.mask_probs.shape[0]:
            raise ValueError(
                f"{self.class_probs.shape[0]} class distributions but {self.mask_probs.shape[0]} masks"
            )

    @property
    def num_queries(self) -> int:
        return int(self.class_probs.shape[0])

    @property
    def num_classes(self) -> int:
        """C, without the "no object" column."""
        return int(self.class_probs.shape[1]) - 1

    @property
    def size(self) -> tuple:
        """(H, W) of the masks."""
        return tuple(self.mask_probs.shape[1:])

    def select(self, keep: Tensor) -> "QueryPrediction":
        """The queries where the boolean/index tensor ``keep`` selects."""
        return QueryPrediction(self.class_probs[keep], self.mask_probs[keep])

    def to(self, device: torch.device | str) -> "QueryPrediction":
        return QueryPrediction(self.class_probs.to(device), self.mask_probs.to(device))


@runtime_checkable
class QuerySegmenter(Protocol):
    """Anything that turns images into per-query predictions.

    ``predict`` takes RGB images as uint8 tensors (3, H, W) — sizes may differ — and returns one
    :class:`QueryPrediction` per image whose masks cover that image at its (H, W), or at ``mask_sizes[i]`` when given
    (masks are sampled directly at that size, which saves memory for large images). Implementations batch internally.
    """

    class_names: List[str]
    """The C class names, in the order of the class-probability columns (without "no object")."""
    device: torch.device
    """Where the outputs live."""

    def predict(
        self, images: Sequence[Tensor], mask_sizes: Optional[Sequence[Tuple[int, int]]] = None
    ) -> List[QueryPrediction]: ...
