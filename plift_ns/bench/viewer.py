"""Viewer frame time: one trained run rendered at the viewer's resolution along each rendering path.

nerfstudio's viewer renders at most ``max_res`` (512) pixels on the longer side while the camera rests; this times
that frame (all outputs the model renders: rgb, depth, class and instance maps, panoptic overlay) on a test camera,
alternating the variants in one process so machine load hits both alike, and reports how far the images differ.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

from plift_ns.models.viewer_gui import as_viewer_frame


def scaled_camera(camera: Any, longer_side: int) -> Any:
    """``camera`` (one) rescaled so its longer side has ``longer_side`` pixels, as the viewer does."""
    scale = longer_side / float(max(int(camera.width), int(camera.height)))
    camera = camera.to("cpu")
    camera.rescale_output_resolution(scale)
    return camera


VARIANTS: Dict[str, Dict[str, Any]] = {
    "plain": {"render_density_volume": False, "occupancy": False, "render_shading_samples": 0, "render_guide_stride": 0},
    "volume": {"render_density_volume": True, "render_guide_stride": 0},
    "guided": {"render_density_volume": True},
    "merged": {"render_density_volume": True, "viewer_frame": True, "viewer_fill_stride": 0},
    "viewer": {"render_density_volume": True, "viewer_frame": True},
}
"""Rendering paths, each against the model's own settings: ``plain`` evaluates the VM density at every sample and
shades every fine sample; ``volume`` looks density up in the summed density volume; ``guided`` adds depth-guided
sampling (what ns-render and evaluation render); ``merged`` adds the viewer's single shading of rays that see one
surface (``viewer_merge_cells``); ``viewer`` is the frame the viewer shows (``merged`` on anchor pixels, filled in
between where they agree: ``viewer_fill_stride``)."""


def _set_variant(model: Any, grid: Any, defaults: Dict[str, Any], variant: Dict[str, Any]) -> None:
    settings = {**defaults, **variant}
    settings.pop("viewer_frame", None)
    model.occupancy = grid if settings.pop("occupancy", True) else None
    model.field.render_density_volume = settings.pop("render_density_volume")  # the field decides; the model follows
    for name, value in settings.items():
        setattr(model.config, name, value)


def _same_colour(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of pixels of two (H, W, 3) colour maps with the same colour (one colour per class / per instance id)."""
    return float((a == b).all(dim=-1).float().mean())


def viewer_frame_times(load_config: Path, longer_side: int = 512, repeats: int = 3) -> Dict[str, Any]:
    """Median seconds per frame of each rendering path in :data:`VARIANTS` (alternated), and how far each path's
    images differ from ``plain``'s."""
    from nerfstudio.utils.eval_utils import eval_setup

    _, pipeline, _, _ = eval_setup(load_config, test_mode="test")
    model = pipeline.model
    model.eval()
    camera = scaled_camera(pipeline.datamanager.eval_dataset.cameras[0:1], longer_side).to(model.device)
    grid = model.occupancy
    defaults = {name: getattr(model.config, name) for variant in VARIANTS.values() for name in variant
                if hasattr(model.config, name)}
    defaults["render_density_volume"] = model.field.render_density_volume
    times: Dict[str, List[float]] = {name: [] for name in VARIANTS}
    outputs: Dict[str, Dict[str, torch.Tensor]] = {}
    for _ in range(repeats):
        for name, variant in VARIANTS.items():
            _set_variant(model, grid, defaults, variant)
            start = time.perf_counter()
            with torch.no_grad(), as_viewer_frame() if variant.get("viewer_frame") else contextlib.nullcontext():
                outputs[name] = model.get_outputs_for_camera(camera)
            times[name].append(time.perf_counter() - start)
    _set_variant(model, grid, defaults, {})
    reference = outputs["plain"]
    agreement: Dict[str, Dict[str, float]] = {}
    for name, out in outputs.items():
        mse = float(((reference["rgb"] - out["rgb"]) ** 2).mean())
        agreement[name] = {
            "rgb_psnr": float("inf") if mse == 0 else float(-10 * torch.log10(torch.tensor(mse))),
            # the colour maps, not the distributions: the viewer's frame carries colours in those (viewer_gui)
            "same_class": _same_colour(reference["semantics_colormap"], out["semantics_colormap"]),
            "same_surrogate_id": _same_colour(reference["instance_colormap"], out["instance_colormap"]),
        }
    return {
        "pixels": [int(camera.width), int(camera.height)],
        "seconds": {name: statistics.median(values) for name, values in times.items()},
        "agreement_with_plain": agreement,
        "occupied_fraction": grid.occupied_fraction() if grid is not None else None,
        "threads": torch.get_num_threads(),
    }
