"""Viewer frames rendered on a coarse grid of anchor pixels and filled in where the anchors agree (viewer only).

The anchors are every ``stride``-th pixel in both directions, and the last row and column (the pixels of
:func:`guided_sampling.pre_pass_pixels`). A pixel between anchors takes the bilinear interpolation of their outputs
when they agree: depths within a tolerance (one surface), the same class and 3D instance, colour and opacity within a
tolerance. Every other pixel (silhouettes, segment boundaries, texture edges) is rendered. The field's grids
interpolate trilinearly, so on one surface its outputs vary smoothly over the few pixels between anchors of a 512-px
frame; where they do not, the anchors differ and the pixels are rendered.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from plift_ns.models.guided_sampling import around


def anchor_stride(longer_side: int, stride: int, min_side: int) -> int:
    """The largest power of two up to ``stride`` that keeps at least ``min_side`` anchors along the frame's longer
    side (1: render every pixel)."""
    step = 1
    while 2 * step <= stride and longer_side / (2 * step) >= min_side:
        step *= 2
    return step


def _bracket(anchors: Int[Tensor, " n"], size: int, stride: int) -> Tuple[Tensor, Tensor, Float[Tensor, " size"]]:
    """For each pixel of a row (or column): the anchors at or before and at or after it, and its fraction of the way
    from the first to the second."""
    before, after = around(anchors, size, stride)
    pixel = torch.arange(size, device=anchors.device)
    span = (anchors[after] - anchors[before]).clamp(min=1)
    return before, after, (pixel - anchors[before]).float() / span.float()


def interpolate(
    values: Float[Tensor, "h w C"], rows: Int[Tensor, " h"], cols: Int[Tensor, " w"], height: int, width: int, stride: int
) -> Float[Tensor, "H W C"]:
    """Bilinear interpolation of anchor values (at ``rows`` × ``cols``) to every pixel of the image."""
    r0, r1, fr = _bracket(rows.to(values.device), height, stride)
    c0, c1, fc = _bracket(cols.to(values.device), width, stride)
    across = torch.lerp(values[:, c0], values[:, c1], fc.to(values.dtype)[None, :, None])
    return torch.lerp(across[r0], across[r1], fr.to(values.dtype)[:, None, None])


def nearest(
    values: Float[Tensor, "h w C"], rows: Int[Tensor, " h"], cols: Int[Tensor, " w"], height: int, width: int, stride: int
) -> Float[Tensor, "H W C"]:
    """Each pixel takes the value of its nearest anchor (the later one at equal distance): for label colours, exact
    where the anchors agree, where interpolation would round."""
    r0, r1, fr = _bracket(rows.to(values.device), height, stride)
    c0, c1, fc = _bracket(cols.to(values.device), width, stride)
    return values[torch.where(fr < 0.5, r0, r1)][:, torch.where(fc < 0.5, c0, c1)]


def spread(
    values: Float[Tensor, "h w C"], rows: Int[Tensor, " h"], cols: Int[Tensor, " w"], height: int, width: int, stride: int
) -> Float[Tensor, "H W"]:
    """For each pixel, the largest difference (over channels) between the values of the anchors around it (up to
    four; 0 on an anchor)."""
    r0, r1, _ = _bracket(rows.to(values.device), height, stride)
    c0, c1, _ = _bracket(cols.to(values.device), width, stride)
    high = torch.maximum(values[:, c0], values[:, c1])
    low = torch.minimum(values[:, c0], values[:, c1])
    return (torch.maximum(high[r0], high[r1]) - torch.minimum(low[r0], low[r1])).amax(dim=-1)


def to_render(
    anchor_outputs: Dict[str, Tensor], labels: Int[Tensor, "h w"], rows: Int[Tensor, " h"], cols: Int[Tensor, " w"],
    height: int, width: int, stride: int, depth_tolerance: float, value_tolerance: float,
) -> Bool[Tensor, "H W"]:
    """The pixels whose anchors disagree, which must be rendered: depths further apart than ``depth_tolerance``,
    different ``labels`` (one integer per class and instance), or colour or opacity further apart than
    ``value_tolerance``. NaN values count as disagreeing."""
    args = (rows, cols, height, width, stride)
    agree = spread(anchor_outputs["depth"], *args) <= depth_tolerance
    agree &= spread(labels[..., None].to(anchor_outputs["depth"].dtype), *args) == 0
    shade = torch.cat([anchor_outputs["rgb"][..., :3], anchor_outputs["accumulation"]], dim=-1)
    agree &= spread(shade, *args) <= value_tolerance
    return ~agree
