"""Occupancy grid for empty-space skipping, in plain torch (CPU and GPU).

As instant-ngp and nerfacc do, a coarse grid over the scene box records where the density field is non-negligible;
the density-only pass that places the fine samples then evaluates the field only at samples in occupied cells (the
others get density 0). The grid holds, per cell, the largest density seen at a few jittered points, kept as a
decaying maximum across updates; a cell is occupied when that density times the coarse step exceeds ``threshold``,
dilated by one cell so surfaces on cell borders are never cut.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

DensityFn = Callable[[Float[Tensor, "M 3"]], Float[Tensor, " M"]]


class OccupancyGrid(nn.Module):
    """A ``resolution``³ boolean grid over ``aabb``; not saved in checkpoints (rebuilt from the density field)."""

    def __init__(self, aabb: Float[Tensor, "2 3"], resolution: int = 64, threshold: float = 0.01) -> None:
        super().__init__()
        self.resolution = resolution
        self.threshold = threshold
        self.register_buffer("aabb", aabb.clone().float(), persistent=False)
        self.register_buffer("max_density", torch.zeros((resolution,) * 3), persistent=False)
        self.register_buffer("occupied", torch.ones((resolution,) * 3, dtype=torch.bool), persistent=False)
        self.source: Optional[object] = None
        """What the grid was last built from (the caller's key: e.g. the field and the training step)."""

    def cell_centres(self) -> Float[Tensor, "R R R 3"]:
        r = self.resolution
        axis = (torch.arange(r, device=self.aabb.device, dtype=torch.float32) + 0.5) / r
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
        return self.aabb[0] + grid * (self.aabb[1] - self.aabb[0])

    @torch.no_grad()
    def update(self, density_fn: DensityFn, step_size: float, decay: float = 0.0, jitter: bool = True,
               chunk: int = 1 << 18, generator: Optional[torch.Generator] = None) -> None:
        """Re-measure every cell (at its centre, jittered within the cell when ``jitter``) and mark as occupied the
        cells whose decayed maximum density × ``step_size`` exceeds the threshold. ``decay`` = 0 forgets the past."""
        points = self.cell_centres().reshape(-1, 3)
        if jitter:
            size = (self.aabb[1] - self.aabb[0]) / self.resolution
            noise = torch.rand(points.shape, generator=generator, device="cpu").to(points.device)
            points = points + (noise - 0.5) * size
        density = torch.cat([density_fn(points[i : i + chunk]).reshape(-1) for i in range(0, len(points), chunk)])
        self.max_density.copy_(torch.maximum(self.max_density * decay, density.reshape(self.max_density.shape)))
        occupied = (self.max_density * step_size > self.threshold).float()[None, None]
        self.occupied.copy_(torch.nn.functional.max_pool3d(occupied, 3, stride=1, padding=1)[0, 0] > 0)

    def lookup(self, positions: Float[Tensor, "*bs 3"]) -> Bool[Tensor, " *bs"]:
        """Whether each position lies in an occupied cell (positions outside the box: not occupied)."""
        unit = (positions - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        inside = ((unit >= 0) & (unit < 1)).all(dim=-1)
        index = (unit * self.resolution).long().clamp_(0, self.resolution - 1)
        return inside & self.occupied[index[..., 0], index[..., 1], index[..., 2]]

    def occupied_fraction(self) -> float:
        return float(self.occupied.float().mean())
