"""Write a synthetic scene folder in the plift-ns data contract (atomically: temp sibling folder, then rename)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from PIL import Image

from plift_ns.io.atomic import atomic_output_dir
from plift_ns.synthetic.cameras import Intrinsics, make_trajectory
from plift_ns.synthetic.config import SynthConfig
from plift_ns.synthetic.noise import MachineLabels, NoiseCounts, simulate_labels
from plift_ns.synthetic.render import RenderedView, render_view
from plift_ns.synthetic.scene import Room, build_room

OVERWRITE_FLAG = "overwrite=True / --overwrite"
"""How the refusal to replace a non-empty output names the way round it (Python API / plift-synth)."""
SUBDIRS = ("images", "depth", "semantics", "instance", "probabilities", "gt_semantics", "gt_instance")

ProgressFn = Callable[[int, int], None]


def scene_rngs(config: SynthConfig) -> Dict[str, np.random.Generator]:
    """Independent generators for the trajectory and the label noise, derived from the scene and noise seeds."""
    return {
        "cameras": np.random.default_rng([int(config.seed), 1]),
        "noise": np.random.default_rng([int(config.seed), int(config.noise.seed), 2]),
    }


def _frame_entry(name: str, c2w: np.ndarray) -> Dict[str, Any]:
    return {
        "file_path": f"images/{name}.png",
        "transform_matrix": [[float(v) for v in row] for row in c2w],
        "semantics_path": f"semantics/{name}.png",
        "instance_path": f"instance/{name}.png",
        "probabilities_path": f"probabilities/{name}.npz",
        "gt_semantics_path": f"gt_semantics/{name}.png",
        "gt_instance_path": f"gt_instance/{name}.png",
        "depth_file_path": f"depth/{name}.png",
    }


def write_frame(root: Path, name: str, view: RenderedView, labels: MachineLabels) -> None:
    """Write one frame's images, depth, machine labels, probabilities and ground truth under ``root``."""
    Image.fromarray(view.rgb).save(root / "images" / f"{name}.png")
    depth_mm = np.clip(np.rint(view.depth.astype(np.float64) * 1000.0), 0, 65535).astype(np.uint16)
    Image.fromarray(depth_mm).save(root / "depth" / f"{name}.png")
    Image.fromarray(labels.semantics).save(root / "semantics" / f"{name}.png")
    Image.fromarray(labels.instance.astype(np.uint16)).save(root / "instance" / f"{name}.png")
    Image.fromarray(view.semantics).save(root / "gt_semantics" / f"{name}.png")
    Image.fromarray(view.instance.astype(np.uint16)).save(root / "gt_instance" / f"{name}.png")
    np.savez_compressed(
        root / "probabilities" / f"{name}.npz",
        probability=labels.probability.astype(np.float16),
        confidence=labels.confidence.astype(np.float16),
    )


def _transforms(config: SynthConfig, room: Room, intr: Intrinsics, frames: List[Dict[str, Any]],
                test_idx: List[int]) -> Dict[str, Any]:
    m = config.scene_box_margin
    test = set(test_idx)
    cs = room.class_set
    return {
        "camera_model": "OPENCV",
        **intr.to_json(),
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        "frames": frames,
        "train_filenames": [f["file_path"] for i, f in enumerate(frames) if i not in test],
        "test_filenames": [f["file_path"] for i, f in enumerate(frames) if i in test],
        "scene_box": [[float(v) - m for v in room.bounds_min], [float(v) + m for v in room.bounds_max]],
        "panoptic_classes": cs.name,
        "depth_unit_scale_factor": 0.001,
        "gt_instances": [{"id": i.instance_id, "class_id": i.class_id, "class": cs.names[i.class_id], "name": i.name}
                         for i in room.instances],
        "synthetic": {"generator": "plift_ns.synthetic", "config": asdict(config)},
    }


def _noise_report(config: SynthConfig, total: NoiseCounts, train: NoiseCounts) -> Dict[str, Any]:
    return {
        "knobs": asdict(config.noise),
        "scene_seed": config.seed,
        "measured": total.rates(),
        "measured_train": train.rates(),
        "counts": total.to_json(),
        "notes": "Rates are fractions of (frame, segment) pairs (confused: among segments whose class has a confusable "
        "partner; missed/split: among thing segments; merged: among thing segments with a same-class segment in "
        "the frame) or of pixels (pixel_class_error: machine class != GT, void counted as wrong; void_fraction).",
    }


def generate_scene(
    config: SynthConfig, output: Path, overwrite: bool = False, progress: Optional[ProgressFn] = None
) -> Path:
    """Render and write a complete synthetic scene to ``output``; returns ``output``.

    Refuses a non-empty ``output`` unless ``overwrite``. Everything is written to a temporary sibling folder that is
    renamed at the end, so a failure never leaves a half-written scene behind. ``progress(done, total)`` is called
    after every view.
    """
    config.validate()
    output = Path(output).expanduser().absolute()
    with atomic_output_dir(output, overwrite, flag=OVERWRITE_FLAG) as tmp:
        for sub in SUBDIRS:
            (tmp / sub).mkdir()
        room = build_room(config.seed)
        intr = Intrinsics.from_fov(config.width, config.height, config.fov_deg)
        rngs = scene_rngs(config)
        poses = make_trajectory(room, config.num_views, rngs["cameras"])
        test_idx = config.test_indices()
        total, train = NoiseCounts(), NoiseCounts()
        frames = []
        for i, c2w in enumerate(poses):
            name = f"frame_{i:05d}"
            view = render_view(room, c2w, intr)
            labels = simulate_labels(view.semantics, view.instance, room.class_set, config.noise, rngs["noise"])
            write_frame(tmp, name, view, labels)
            total.add(labels.counts)
            if i not in test_idx:
                train.add(labels.counts)
            frames.append(_frame_entry(name, c2w))
            if progress is not None:
                progress(i + 1, len(poses))
        (tmp / "transforms.json").write_text(json.dumps(_transforms(config, room, intr, frames, test_idx), indent=1))
        (tmp / "noise.json").write_text(json.dumps(_noise_report(config, total, train), indent=1))
    return output
