"""Viewer frames rendered on a coarse grid of anchor pixels and filled in where the anchors agree (viewer only).

The anchors are every ``stride``-th pixel in both directions, and the last row and column (the pixels of
:func:`guided_sampling.pre_pass_pixels`). A pixel between anchors takes the bilinear interpolation of their outputs
when they agree: depths within a tolerance (one surface), the same class and 3D instance, colour and opacity within a
tolerance. Every other pixel (silhouettes, segment boundaries, texture edges) is rendered. The field's grids
interpolate trilinearly, so on one surface its outputs vary smoothly over the few pixels between anchors of a 512-px
frame; where they do not, the anchors differ and the pixels are rendered.
"""

from __future__ import annotations

from typing import Dict

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from plift_ns.models.guided_sampling import Brackets


def anchor_stride(longer_side: int, stride: int, min_side: int) -> int:
    """The largest power of two up to ``stride`` that keeps at least ``min_side`` anchors along the frame's longer
    side (1: render every pixel)."""
    step = 1
    while 2 * step <= stride and longer_side / (2 * step) >= min_side:
        step *= 2
    return step


def interpolate(values: Float[Tensor, "h w C"], brackets: Brackets) -> Float[Tensor, "H W C"]:
    """Bilinear interpolation of anchor values to every pixel of the image."""
    b = brackets
    across = torch.lerp(values[:, b.col_before], values[:, b.col_after], b.col_fraction.to(values.dtype)[None, :, None])
    return torch.lerp(across[b.row_before], across[b.row_after], b.row_fraction.to(values.dtype)[:, None, None])


def nearest(values: Float[Tensor, "h w C"], brackets: Brackets) -> Float[Tensor, "H W C"]:
    """Each pixel takes the value of its nearest anchor (the later one at equal distance): for label colours, exact
    where the anchors agree, where interpolation would round."""
    b = brackets
    rows = torch.where(b.row_fraction < 0.5, b.row_before, b.row_after)
    return values[rows][:, torch.where(b.col_fraction < 0.5, b.col_before, b.col_after)]


def spread(values: Float[Tensor, "h w C"], brackets: Brackets) -> Float[Tensor, "H W"]:
    """For each pixel, the largest difference (over channels) between the values of the anchors around it (up to
    four; 0 on an anchor)."""
    return (brackets.high(values) - brackets.low(values)).amax(dim=-1)


def to_render(
    anchor_outputs: Dict[str, Tensor], labels: Int[Tensor, "h w"], brackets: Brackets, depth_tolerance: float,
    value_tolerance: float,
) -> Bool[Tensor, "H W"]:
    """The pixels whose anchors disagree, which must be rendered: depths further apart than ``depth_tolerance``,
    different ``labels`` (one integer per class and instance), or colour or opacity further apart than
    ``value_tolerance``. NaN values count as disagreeing."""
    agree = spread(anchor_outputs["depth"], brackets) <= depth_tolerance
    agree &= spread(labels[..., None].to(anchor_outputs["depth"].dtype), brackets) == 0
    shade = torch.cat([anchor_outputs["rgb"][..., :3], anchor_outputs["accumulation"]], dim=-1)
    agree &= spread(shade, brackets) <= value_tolerance
    return ~agree
