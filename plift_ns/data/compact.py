"""Compact per-pixel class distributions: the k most likely classes with uint8-quantised probabilities.

A 1000-frame 640×480 scene with 21 classes holds 6.5 G class probabilities; as float16 that is 13 GB. Kept as the
top-k class ids (uint8) and their probabilities quantised to 1/255 (uint8), with the remaining mass spread evenly over
the other classes when decoded, it takes 2k bytes per pixel (k = 3: 1.8 GB) and the training target changes by at most
half a quantisation step per class plus the (small) mass outside the top k.
"""

from __future__ import annotations

from typing import Tuple

import torch
from jaxtyping import Float, Int
from torch import Tensor


class TopKDistributions:
    """(N, H, W) pixels' class distributions over ``num_classes`` classes, each kept as its top ``k`` classes."""

    def __init__(self, shape: Tuple[int, int, int], num_classes: int, k: int = 3) -> None:
        if num_classes > 256:
            raise ValueError(f"at most 256 classes can be stored compactly, got {num_classes}")
        self.num_classes = num_classes
        self.k = min(k, num_classes)
        self.ids = torch.zeros((*shape, self.k), dtype=torch.uint8)
        self.mass = torch.zeros((*shape, self.k), dtype=torch.uint8)

    def store(self, index: int, probability: Float[Tensor, "H W C"]) -> None:
        """Encode frame ``index``'s distributions (any float dtype; rows are renormalised when decoded)."""
        values, ids = torch.topk(probability.float(), self.k, dim=-1)
        self.ids[index] = ids.to(torch.uint8)
        self.mass[index] = values.clamp(0, 1).mul(255).round_().to(torch.uint8)

    def gather(self, image: Int[Tensor, " n"], y: Int[Tensor, " n"], x: Int[Tensor, " n"]) -> Float[Tensor, "n C"]:
        """Decoded distributions (float32, rows sum to 1) of the pixels (image, y, x)."""
        ids = self.ids[image, y, x].long()
        top = self.mass[image, y, x].float().div_(255.0)
        others = self.num_classes - self.k
        rest = (1.0 - top.sum(dim=-1, keepdim=True)).clamp_(min=0.0)
        fill = rest / others if others > 0 else torch.zeros_like(rest)
        out = fill.expand(-1, self.num_classes).clone()
        out.scatter_(-1, ids, top)
        return out / out.sum(dim=-1, keepdim=True).clamp_(min=1e-8)

    def nbytes(self) -> int:
        return self.ids.numel() + self.mass.numel()


class DenseDistributions:
    """The same interface as :class:`TopKDistributions`, keeping every class probability as float16 (exact up to
    float16; 2C bytes per pixel)."""

    def __init__(self, shape: Tuple[int, int, int], num_classes: int) -> None:
        self.num_classes = num_classes
        self.values = torch.zeros((*shape, num_classes), dtype=torch.float16)

    def store(self, index: int, probability: Float[Tensor, "H W C"]) -> None:
        self.values[index] = probability.to(torch.float16)

    def gather(self, image: Int[Tensor, " n"], y: Int[Tensor, " n"], x: Int[Tensor, " n"]) -> Float[Tensor, "n C"]:
        return self.values[image, y, x].float()

    def nbytes(self) -> int:
        return self.values.numel() * 2
