"""Viewer frames filled in from anchor pixels: interpolation and the agreement test by hand, and a frame of a known
two-wall field that renders far fewer rays and still matches the fully rendered frame."""

from __future__ import annotations

import torch
from nerfstudio.cameras.cameras import Cameras
from tiny_models import two_walls

from plift_ns.models import filled_frames, guided_sampling
from plift_ns.models.viewer_gui import as_viewer_frame

NAN = float("nan")


def _grid(height: int, width: int, stride: int):
    rows, cols = guided_sampling.pre_pass_pixels(height, width, stride)
    return rows, cols, guided_sampling.Brackets.of(height, width, stride)


def test_interpolation_reproduces_a_linear_image_and_averages_the_four_anchors_between_them() -> None:
    rows, cols, grid = _grid(5, 4, 2)  # rows 0 2 4, columns 0 2 3 (the last column is always an anchor)
    assert rows.tolist() == [0, 2, 4] and cols.tolist() == [0, 2, 3]
    linear = (10.0 * rows[:, None] + cols[None, :]).float()[..., None]
    full = filled_frames.interpolate(linear, grid)
    expected = (10.0 * torch.arange(5)[:, None] + torch.arange(4)[None, :]).float()
    assert torch.allclose(full[..., 0], expected)
    corners = torch.zeros(3, 3, 1)
    corners[0, 0], corners[0, 1], corners[1, 0], corners[1, 1] = 0.0, 1.0, 2.0, 3.0
    full = filled_frames.interpolate(corners, grid)
    assert full[1, 1, 0] == 1.5, "the pixel in the middle of four anchors: their mean"
    assert full[0, 1, 0] == 0.5 and full[1, 0, 0] == 1.0, "pixels between two anchors: the mean of those two"
    assert full[2, 2, 0] == 3.0, "an anchor keeps its own value"


def test_nearest_copies_the_nearest_anchor() -> None:
    rows, cols, grid = _grid(5, 4, 2)
    values = torch.arange(9.0).view(3, 3, 1)
    full = filled_frames.nearest(values, grid)[..., 0]
    # rows 0 2 4 / columns 0 2 3: pixel 1 lies halfway (the later anchor), pixel 3 is the last column's anchor
    assert full[0].tolist() == [0.0, 1.0, 1.0, 2.0] and full[1].tolist() == [3.0, 4.0, 4.0, 5.0]


def test_anchor_stride_is_a_power_of_two_that_keeps_enough_anchors() -> None:
    assert filled_frames.anchor_stride(512, 4, 128) == 4
    assert filled_frames.anchor_stride(256, 4, 128) == 2, "a smaller frame (the camera moves): closer anchors"
    assert filled_frames.anchor_stride(200, 4, 128) == 1, "too small to fill"
    assert filled_frames.anchor_stride(1024, 8, 128) == 8 and filled_frames.anchor_stride(512, 8, 128) == 4
    assert filled_frames.anchor_stride(512, 3, 128) == 2


def _anchors(depth, rgb=None, accumulation=None):
    depth = torch.as_tensor(depth, dtype=torch.float32)[..., None]
    return {"depth": depth, "rgb": torch.full((*depth.shape[:2], 3), 0.5) if rgb is None else rgb,
            "accumulation": torch.ones_like(depth) if accumulation is None else accumulation}


def test_pixels_are_rendered_where_their_anchors_see_different_depths_labels_or_colours() -> None:
    rows, cols, grid = _grid(5, 5, 2)  # anchors at rows and columns 0 2 4
    labels = torch.zeros(3, 3, dtype=torch.long)
    flat = _anchors(torch.ones(3, 3))

    def missing(anchors, labels=labels):
        return filled_frames.to_render(anchors, labels, grid, depth_tolerance=0.1, value_tolerance=0.1)

    assert not missing(flat).any(), "one surface, one segment, one colour: everything interpolated"
    step = _anchors([[1.0, 1.0, 3.0]] * 3)  # a depth edge between anchor columns 1 and 2 (pixel columns 2 and 4)
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[:, 3] = True
    assert torch.equal(missing(step), expected)
    other = labels.clone()
    other[2, 0] = 7  # another instance under the bottom-left anchor (pixel 4, 0)
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[3, 0] = expected[3, 1] = expected[4, 1] = True
    assert torch.equal(missing(flat, other), expected), "the pixels next to it, not the anchor itself"
    rgb = torch.full((3, 3, 3), 0.5)
    rgb[0, 0, 1] = 0.55
    assert not missing(_anchors(torch.ones(3, 3), rgb)).any(), "a colour difference within the tolerance"
    rgb[0, 0, 1] = 0.65
    assert missing(_anchors(torch.ones(3, 3), rgb))[1, 1], "a colour difference beyond it"
    accumulation = torch.ones(3, 3, 1)
    accumulation[1, 1] = 0.5
    assert missing(_anchors(torch.ones(3, 3), accumulation=accumulation))[1, 1], "one anchor sees through"
    holed = torch.ones(3, 3)
    holed[0, 0] = NAN
    assert missing(_anchors(holed))[0, 0] and missing(_anchors(holed))[1, 1], "NaN never agrees"


def test_a_filled_viewer_frame_renders_few_rays_and_matches_the_fully_rendered_frame() -> None:
    camera = Cameras(camera_to_worlds=torch.eye(4)[None, :3], fx=24.0, fy=24.0, cx=16.0, cy=12.0, width=32, height=24)
    model = two_walls(viewer_fill_stride=4, viewer_fill_min_side=8)
    counted = {"rays": 0}
    render_guided = model._render_guided

    def counting(bundle):
        counted["rays"] += bundle.shape[0] * bundle.shape[1]
        return render_guided(bundle)

    model._render_guided = counting
    with as_viewer_frame():
        filled = model.get_outputs_for_camera(camera)
    model.config.viewer_fill_stride = 0
    counted_filled = counted["rays"]
    with as_viewer_frame():
        full = model.get_outputs_for_camera(camera)
    assert counted["rays"] - counted_filled == 24 * 32, "without filling, every pixel is rendered"
    assert counted_filled < 0.5 * 24 * 32, "most pixels were interpolated"
    near = full["depth"] < 0.5
    assert 0.05 < near.float().mean() < 0.95, "both walls in view"
    assert torch.equal(filled["depth"] < 0.5, near), "the near wall's edge was rendered, not blurred"
    depth_error = (filled["depth"] - full["depth"]).abs()
    assert depth_error.max() < model._grid_cell() and depth_error.mean() < 0.01
    assert (filled["rgb"] - full["rgb"]).abs().max() < 0.02
    assert (filled["semantics_colormap"] == full["semantics_colormap"]).all(dim=-1).float().mean() > 0.97
    assert (filled["instance_colormap"] == full["instance_colormap"]).all(dim=-1).float().mean() > 0.97
    model.config.viewer_fill_stride = 4
    counted["rays"] = 0
    model.get_outputs_for_camera(camera)
    assert counted["rays"] == 24 * 32, "ns-render and evaluation render every pixel"
