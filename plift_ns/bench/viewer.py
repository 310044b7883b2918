"""Viewer frame time: one trained run rendered at the viewer's resolution, with and without empty-space skipping.

nerfstudio's viewer renders at most ``max_res`` (512) pixels on the longer side while the camera rests; this times
that frame (all outputs the model renders: rgb, depth, class and instance maps, panoptic overlay) on a test camera,
alternating the variants in one process so machine load hits both alike, and reports how far the images differ.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Dict, List

import torch


def scaled_camera(camera: Any, longer_side: int) -> Any:
    """``camera`` (one) rescaled so its longer side has ``longer_side`` pixels, as the viewer does."""
    scale = longer_side / float(max(int(camera.width), int(camera.height)))
    camera = camera.to("cpu")
    camera.rescale_output_resolution(scale)
    return camera


def viewer_frame_times(load_config: Path, longer_side: int = 512, repeats: int = 3) -> Dict[str, Any]:
    """Median seconds per frame with the occupancy grid (``skip``) and without (``full``), and their differences."""
    from nerfstudio.utils.eval_utils import eval_setup

    _, pipeline, _, _ = eval_setup(load_config, test_mode="test")
    model = pipeline.model
    model.eval()
    camera = scaled_camera(pipeline.datamanager.eval_dataset.cameras[0:1], longer_side).to(model.device)
    grid = model.occupancy
    times: Dict[str, List[float]] = {"full": [], "skip": []}
    outputs: Dict[str, Dict[str, torch.Tensor]] = {}
    for _ in range(repeats):
        for variant in ("full", "skip"):
            model.occupancy = grid if variant == "skip" else None
            start = time.perf_counter()
            with torch.no_grad():
                outputs[variant] = model.get_outputs_for_camera(camera)
            times[variant].append(time.perf_counter() - start)
    model.occupancy = grid
    full, skip = outputs["full"], outputs["skip"]
    mse = float(((full["rgb"] - skip["rgb"]) ** 2).mean())
    same_class = float((full["semantics"].argmax(-1) == skip["semantics"].argmax(-1)).float().mean())
    same_id = float((full["instance"].argmax(-1) == skip["instance"].argmax(-1)).float().mean())
    return {
        "pixels": [int(camera.width), int(camera.height)],
        "full_s": statistics.median(times["full"]),
        "skip_s": statistics.median(times["skip"]),
        "occupied_fraction": grid.occupied_fraction() if grid is not None else None,
        "rgb_psnr_between": float("inf") if mse == 0 else float(-10 * torch.log10(torch.tensor(mse))),
        "same_class": same_class,
        "same_surrogate_id": same_id,
        "threads": torch.get_num_threads(),
    }
