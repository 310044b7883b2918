"""Colour-coded previews of a scene folder: RGB | GT semantics | machine semantics | GT instances | machine instances."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from plift_ns.data.classes import load_class_set
from plift_ns.eval.visualize import colorize_instances, colorize_semantics, side_by_side


def preview_frames(scene: Path, frames: Optional[Sequence[int]] = None) -> np.ndarray:
    """Composite uint8 image, one row per frame index (default: first frame and one from the middle)."""
    scene = Path(scene)
    meta = json.loads((scene / "transforms.json").read_text())
    cs = load_class_set(meta.get("panoptic_classes", "scannet21"), scene)
    entries = meta["frames"]
    idx = list(frames) if frames is not None else [0, len(entries) // 2]
    rows = []
    for i in idx:
        keys = ("file_path", "gt_semantics_path", "semantics_path", "gt_instance_path", "instance_path")
        img = {key: np.asarray(Image.open(scene / entries[i][key])) for key in keys}
        gt_sem, sem = img["gt_semantics_path"], img["semantics_path"]
        panels = [
            ("rgb", img["file_path"][..., :3]),
            ("GT semantics", colorize_semantics(gt_sem, cs)),
            ("machine semantics", colorize_semantics(sem, cs)),
            ("GT instances", colorize_instances(gt_sem, img["gt_instance_path"], cs)),
            ("machine instances", colorize_instances(sem, img["instance_path"], cs)),
        ]
        rows.append(side_by_side(panels, title_height=14 if not rows else 0))
    return np.concatenate(rows, axis=0)


def save_preview(scene: Path, out_png: Path, frames: Optional[Sequence[int]] = None, scale: int = 2) -> Path:
    """Write :func:`preview_frames` (nearest-neighbour upscaled by ``scale``) to ``out_png``."""
    img = Image.fromarray(preview_frames(scene, frames))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    img.save(out_png)
    return out_png
