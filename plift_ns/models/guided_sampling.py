"""Depth-guided sampling for whole-image renders (viewer, ns-render, evaluation; never in training).

A density-only pre-pass on every ``stride``-th pixel in both directions finds, for each of those rays, the distance
interval that holds its rendering weight. A pixel then lies between four pre-pass rays; when all four see one surface
close behind the other (their intervals together span at most ``max_length``), the pixel's fine samples are spread
evenly over that span, widened by a margin, and its 64-sample density pass and PDF sampling are skipped. Every other
pixel (silhouettes, where the four rays hit surfaces far apart, and rays that see little) is sampled as usual. Neighbouring
rays of an image see nearly the same depths, so most pixels take the short path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
from jaxtyping import Bool, Float, Int
from nerfstudio.cameras.rays import RayBundle, RaySamples
from torch import Tensor

INTERVAL_KEY = "render_interval"
"""Ray-bundle metadata: per ray the (start, end) distances its fine samples span; NaN: sample as usual."""


def pre_pass_pixels(height: int, width: int, stride: int) -> Tuple[Tensor, Tensor]:
    """Rows and columns of the pre-pass rays: every ``stride``-th one, and always the last, so that every pixel lies
    between (or on) pre-pass rays."""
    rows = torch.arange(0, height + stride - 1, stride).clamp(max=height - 1)
    cols = torch.arange(0, width + stride - 1, stride).clamp(max=width - 1)
    return rows, cols


def around(pre_pass: Tensor, size: int, stride: int) -> Tuple[Tensor, Tensor]:
    """For each pixel of a row (or column) of ``size``: the indices of the pre-pass pixels at or before it and at or
    after it (the same one for a pixel on a pre-pass pixel)."""
    pixel = torch.arange(size, device=pre_pass.device)
    before = pixel // stride
    after = torch.where(pre_pass[before] == pixel, before, (before + 1).clamp(max=len(pre_pass) - 1))
    return before, after


def weight_interval(
    ray_samples: RaySamples, weights: Float[Tensor, "N S 1"], tail: float, min_opacity: float
) -> Float[Tensor, "N 2"]:
    """The distances between which each ray's weight lies, leaving out ``tail`` of its opacity at either end: the
    start of the sample where the cumulative weight passes ``tail`` × opacity and the end of the one where it passes
    (1 − ``tail``) × opacity. NaN for a ray whose opacity is below ``min_opacity`` (it sees no surface to guide by)."""
    w = weights[..., 0]
    opacity = w.sum(dim=-1, keepdim=True)
    cdf = torch.cumsum(w, dim=-1) / opacity.clamp(min=1e-10)
    last = w.shape[-1] - 1
    first = torch.searchsorted(cdf.contiguous(), torch.full_like(opacity, tail)).clamp(max=last)
    final = torch.searchsorted(cdf.contiguous(), torch.full_like(opacity, 1.0 - tail)).clamp(max=last)
    start = ray_samples.frustums.starts[..., 0].gather(1, first)
    end = ray_samples.frustums.ends[..., 0].gather(1, final)
    interval = torch.cat([start, end], dim=-1)
    return torch.where(opacity >= min_opacity, interval, torch.full_like(interval, float("nan")))


@dataclass(frozen=True)
class Brackets:
    """For every pixel of an image, the sparse-grid pixels around it (rows and columns of :func:`pre_pass_pixels`):
    in each direction the grid index at or before it and at or after it, and its fraction of the way between them."""

    row_before: Int[Tensor, " H"]
    row_after: Int[Tensor, " H"]
    row_fraction: Float[Tensor, " H"]
    col_before: Int[Tensor, " W"]
    col_after: Int[Tensor, " W"]
    col_fraction: Float[Tensor, " W"]

    @classmethod
    def of(cls, height: int, width: int, stride: int, device: torch.device | str = "cpu") -> "Brackets":
        parts = []
        for pixels, size in zip(pre_pass_pixels(height, width, stride), (height, width)):
            pixels = pixels.to(device)
            before, after = around(pixels, size, stride)
            span = (pixels[after] - pixels[before]).clamp(min=1)
            parts += [before, after, (torch.arange(size, device=device) - pixels[before]).float() / span.float()]
        return cls(*parts)

    def low(self, values: Float[Tensor, "h w *C"]) -> Float[Tensor, "H W *C"]:
        """Per pixel, the smallest of the (up to four) grid values around it; NaN if one of them is NaN."""
        across = torch.minimum(values[:, self.col_before], values[:, self.col_after])
        return torch.minimum(across[self.row_before], across[self.row_after])

    def high(self, values: Float[Tensor, "h w *C"]) -> Float[Tensor, "H W *C"]:
        """Per pixel, the largest of the (up to four) grid values around it; NaN if one of them is NaN."""
        across = torch.maximum(values[:, self.col_before], values[:, self.col_after])
        return torch.maximum(across[self.row_before], across[self.row_after])


def bracket_intervals(
    pre: Float[Tensor, "h w 2"], height: int, width: int, stride: int, margin: float, max_length: float
) -> Float[Tensor, "H W 2"]:
    """Each pixel's interval from the pre-pass rays around it (up to four; rows and columns of :func:`pre_pass_pixels`):
    the earliest start and the latest end, widened by ``margin``; NaN where one of the four is NaN or the widened
    interval is longer than ``max_length``."""
    brackets = Brackets.of(height, width, stride, pre.device)
    start = brackets.low(pre[..., 0]) - margin
    end = brackets.high(pre[..., 1]) + margin
    unguided = torch.isnan(start) | torch.isnan(end) | (end - start > max_length)
    interval = torch.stack([start.clamp(min=0.0), end], dim=-1)
    return torch.where(unguided[..., None], torch.full_like(interval, float("nan")), interval)


def guided(ray_bundle: RayBundle) -> Bool[Tensor, " N"] | None:
    """Which rays of a (flat) bundle carry a guiding interval; None when the bundle has none."""
    interval = (ray_bundle.metadata or {}).get(INTERVAL_KEY)
    return None if interval is None else ~torch.isnan(interval[:, 0])


def interval_samples(ray_bundle: RayBundle, num_samples: int) -> RaySamples:
    """``num_samples`` equal bins over each ray's guiding interval, kept inside the ray's near/far."""
    interval = ray_bundle.metadata[INTERVAL_KEY]
    start, end = interval[:, :1], interval[:, 1:]
    if ray_bundle.nears is not None and ray_bundle.fars is not None:
        start = torch.maximum(start, ray_bundle.nears)
        end = torch.minimum(end, ray_bundle.fars).clamp(min=start + 1e-6)
    steps = torch.linspace(0.0, 1.0, num_samples + 1, device=start.device, dtype=start.dtype)
    edges = start + (end - start) * steps
    return ray_bundle.get_ray_samples(bin_starts=edges[:, :-1, None], bin_ends=edges[:, 1:, None])
