"""Depth-guided sampling of whole-image renders and the viewer's merged shading: the interval arithmetic by hand, and
renders of a known two-wall field that agree with the usual sampling while doing less work."""

from __future__ import annotations

import math

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from tiny_models import two_walls

from plift_ns.models import guided_sampling
from plift_ns.models.viewer_gui import as_viewer_frame

NAN = float("nan")


def test_pre_pass_pixels_include_the_last_row_and_column() -> None:
    rows, cols = guided_sampling.pre_pass_pixels(10, 8, 4)
    assert rows.tolist() == [0, 4, 8, 9]
    assert cols.tolist() == [0, 4, 7]


def test_weight_interval_leaves_the_tail_out_at_both_ends_and_skips_rays_that_see_nothing() -> None:
    bundle = RayBundle(origins=torch.zeros(2, 3), directions=torch.tensor([[0.0, 0.0, 1.0]] * 2),
                       pixel_area=torch.ones(2, 1))
    edges = torch.arange(6, dtype=torch.float32)  # bins [0,1], [1,2], ..., [4,5]
    samples = bundle.get_ray_samples(edges[:-1].expand(2, 5)[..., None], edges[1:].expand(2, 5)[..., None])
    weights = torch.tensor([[0.01, 0.3, 0.5, 0.15, 0.04], [0.1, 0.1, 0.0, 0.0, 0.0]])[..., None]
    # ray 0: opacity 1.0, cumulative 0.01 0.31 0.81 0.96 1.0 → 5% passed in bin 1 (starts at 1), 95% in bin 3 (ends at 4)
    interval = guided_sampling.weight_interval(samples, weights, tail=0.05, min_opacity=0.5)
    assert interval[0].tolist() == [1.0, 4.0]
    assert torch.isnan(interval[1]).all(), "opacity 0.2 < 0.5: no surface to guide by"


def test_bracket_intervals_take_the_four_surrounding_pre_pass_rays() -> None:
    # pre-pass rows/cols 0 and 2 of a 3x3 image (stride 2): starts 1, 2 / 3, 4 and ends start + 1; one ray NaN below
    pre = torch.tensor([[[1.0, 2.0], [2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]]])
    full = guided_sampling.bracket_intervals(pre, 3, 3, stride=2, margin=0.5, max_length=10.0)
    # pixel (1, 1) lies between all four: earliest start 1, latest end 5, widened by 0.5
    assert full[1, 1].tolist() == [0.5, 5.5]
    # pixels on a pre-pass ray take that ray alone
    assert full[0, 0].tolist() == [0.5, 2.5]
    assert full[2, 2].tolist() == [3.5, 5.5]
    short = guided_sampling.bracket_intervals(pre, 3, 3, stride=2, margin=0.5, max_length=3.0)
    assert torch.isnan(short[1, 1]).all(), "longer than max_length: sampled as usual"
    assert short[2, 2].tolist() == [3.5, 5.5]
    holed = pre.clone()
    holed[1, 1] = NAN
    with_hole = guided_sampling.bracket_intervals(holed, 3, 3, stride=2, margin=0.5, max_length=10.0)
    assert torch.isnan(with_hole[1, 1]).all() and torch.isnan(with_hole[2, 2]).all()
    assert with_hole[2, 0].tolist() == [2.5, 4.5], "(2, 0) lies on pre-pass ray (1, 0), away from the hole"
    assert with_hole[1, 0].tolist() == [0.5, 4.5], "(1, 0) lies between pre-pass rays (0, 0) and (1, 0)"


def test_guided_render_is_as_close_to_a_dense_render_as_the_usual_sampling_while_most_pixels_skip_the_density_pass() -> None:
    camera = Cameras(camera_to_worlds=torch.eye(4)[None, :3], fx=24.0, fy=24.0, cx=16.0, cy=12.0, width=32, height=24)
    guided = two_walls(render_guide_stride=4)
    counted = {"rays": 0}
    uniform = guided.sampler_uniform.forward

    def counting(ray_bundle, *args, **kwargs):
        counted["rays"] += len(ray_bundle)
        return uniform(ray_bundle, *args, **kwargs)

    guided.sampler_uniform.forward = counting
    fast = guided.get_outputs_for_camera(camera)
    plain = two_walls(render_guide_stride=0).get_outputs_for_camera(camera)
    truth = two_walls(dense=True, render_guide_stride=0).get_outputs_for_camera(camera)
    pre_pass = math.ceil(24 / 4 + 1) * math.ceil(32 / 4 + 1)
    assert counted["rays"] < pre_pass + 0.5 * 24 * 32, "most pixels were sampled from their guiding interval"
    assert truth["accumulation"].min() > 0.9, "every ray ends on a wall"
    # the near wall on the left, the far one on the right
    assert truth["depth"][:, :8].max() < 0.3 and truth["depth"][:, -4:].min() > 0.5

    def error(outputs, name):
        return (outputs[name] - truth[name]).abs()

    assert error(fast, "depth").mean() <= error(plain, "depth").mean() + 0.002
    assert error(fast, "depth").max() <= error(plain, "depth").max() + 0.01
    assert error(fast, "accumulation").max() < 0.01 and error(fast, "rgb").max() < 0.01

    def same_class(outputs):
        return (outputs["semantics"].argmax(-1) == truth["semantics"].argmax(-1)).float().mean()

    assert same_class(fast) >= same_class(plain) - 0.01


def test_viewer_frames_shade_rays_that_see_one_surface_once_and_other_renders_never_do() -> None:
    camera = Cameras(camera_to_worlds=torch.eye(4)[None, :3], fx=24.0, fy=24.0, cx=16.0, cy=12.0, width=32, height=24)
    model = two_walls(render_shading_samples=4, viewer_merge_cells=2.0, viewer_fill_stride=0)
    shaded = {"points": 0}
    sample_outputs = model.field.sample_outputs

    def counting(samples, *args, **kwargs):
        shaded["points"] += samples.frustums.starts.shape[0]
        return sample_outputs(samples, *args, **kwargs)

    model.field.sample_outputs = counting
    full = model.get_outputs_for_camera(camera)
    assert shaded["points"] == 4 * 24 * 32, "ns-render and evaluation shade every quantile sample"
    shaded["points"] = 0
    with as_viewer_frame():
        frame = model.get_outputs_for_camera(camera)
    assert shaded["points"] < 2 * 24 * 32, "most rays end on one wall and are shaded once"
    assert (frame["rgb"] - full["rgb"]).abs().max() < 0.02
    assert torch.equal(frame["depth"], full["depth"]), "depth does not depend on shading"
    assert (frame["semantics_colormap"] == full["semantics_colormap"]).all(dim=-1).float().mean() > 0.97
