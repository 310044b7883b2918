"""Empty-space skipping: the occupancy grid against an analytic density, and renders with and without it."""

from __future__ import annotations

import torch
from tiny_models import rays, tiny_model

from plift_ns.fields.occupancy import OccupancyGrid

BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def ball(positions: torch.Tensor, radius: float = 0.4) -> torch.Tensor:
    """Density 50 inside a ball around (0.2, 0, 0), exactly 0 outside."""
    centre = torch.tensor([0.2, 0.0, 0.0])
    return torch.where((positions - centre).norm(dim=-1) < radius, 50.0, 0.0)


def test_grid_marks_the_ball_and_nothing_far_from_it() -> None:
    grid = OccupancyGrid(BOX, resolution=32, threshold=0.01)
    grid.update(ball, step_size=0.05, jitter=False)
    centres = grid.cell_centres().reshape(-1, 3)
    distance = (centres - torch.tensor([0.2, 0.0, 0.0])).norm(dim=-1).reshape(32, 32, 32)
    cell = 2.0 / 32
    assert grid.occupied[distance < 0.4 - cell].all(), "every cell inside the ball is occupied"
    assert not grid.occupied[distance > 0.4 + 3 * cell].any(), "cells well outside are empty"
    assert 0.01 < grid.occupied_fraction() < 0.1
    # lookup: points in the ball are occupied, points far away or outside the box are not
    assert grid.lookup(torch.tensor([[0.2, 0.0, 0.0], [-0.8, 0.8, 0.8], [1.5, 0.0, 0.0]])).tolist() == [True, False, False]


def test_decaying_maximum_keeps_recent_density() -> None:
    grid = OccupancyGrid(BOX, resolution=8, threshold=0.01)
    grid.update(ball, step_size=0.05, jitter=False)
    grid.update(lambda p: torch.zeros(len(p)), step_size=0.05, decay=0.95, jitter=False)
    assert grid.occupied.any(), "a cell seen occupied stays so while its decayed density is above the threshold"
    grid.update(lambda p: torch.zeros(len(p)), step_size=0.05, decay=0.0, jitter=False)
    assert not grid.occupied.any()


def test_render_with_occupancy_equals_render_without_on_a_sharp_density() -> None:
    """Skipped samples are those whose density is 0: the coarse weights, the fine samples and every output agree."""
    outputs = {}
    for resolution in (0, 32):
        model = tiny_model(occupancy_resolution=resolution, head_weight_threshold=0.0, render_density_volume=False)
        model.field.get_density = lambda samples: ball(samples.frustums.get_positions())[..., None]
        model.eval()
        with torch.no_grad():
            outputs[resolution] = model(rays(n=128))
        if resolution:
            assert model.occupancy.occupied_fraction() < 0.1, "the grid skips most of the box"
    for key in ("rgb", "depth", "accumulation", "semantics", "instance"):
        assert torch.allclose(outputs[0][key], outputs[32][key], atol=1e-5), key
    assert outputs[0]["accumulation"].max() > 0.5, "some rays hit the ball"


def test_grid_is_measured_again_when_the_field_changes() -> None:
    model = tiny_model(occupancy_resolution=16, render_density_volume=False)
    model.eval()
    model.field.get_density = lambda samples: ball(samples.frustums.get_positions())[..., None]
    with torch.no_grad():
        model(rays(n=8))
    first = model.occupancy.occupied.clone()
    model.field.get_density = lambda samples: torch.zeros((*samples.shape, 1))
    model.step += 1  # training moved on
    with torch.no_grad():
        model(rays(n=8))
    assert first.any() and not model.occupancy.occupied.any()
