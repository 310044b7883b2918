"""``plift-export``: a panoptic point cloud of a trained model, in the style of ``ns-export pointcloud``.

Random pixels of the training (or eval) views are rendered; each ray's expected depth gives a 3D point, kept where the
ray is opaque (accumulation ≥ a threshold). Every point carries its rendered colour and its panoptic label by the
model's inference rule (class = argmax κ; thing → surrogate id + 1, stuff → 0). Written to ``--output-dir``:

* ``panoptic_pointcloud.ply``: binary PLY, vertex properties ``x y z red green blue class_id instance_id``, in the
  scene's ORIGINAL world coordinates (the dataparser's centring/scaling undone) unless ``--normalised-coordinates``;
* ``instances/<class>_<id>.ply``: one point set per 3D thing instance; ``stuff/<class>.ply``: one per stuff class;
* ``panoptic_export.json``: class names, and per instance its class, id, point count, bounding box and file.

A non-empty ``--output-dir`` is refused unless ``--overwrite``; the export is written to a temporary sibling folder
that replaces ``--output-dir`` whole once complete (no stale files of an earlier export, nothing half-written).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, get_args

import numpy as np
import torch
import tyro
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from plift_ns.checkpoints import allow_trusted_checkpoints
from plift_ns.errors import PliftDataError, exit_on_data_error
from plift_ns.io.atomic import atomic_output_dir, refuse_existing

CONSOLE = Console(width=120)
Split = Literal["train", "eval"]
SPLITS = get_args(Split)

PLY_DTYPE = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("class_id", "<i4"),
        ("instance_id", "<i4"),
    ]
)
_PLY_TYPES = {"<f4": "float", "u1": "uchar", "<i4": "int"}


def write_ply(path: Path, points: np.ndarray) -> None:
    """Write a structured array (fields of PLY_DTYPE) as a binary little-endian PLY."""
    points = np.ascontiguousarray(points, dtype=PLY_DTYPE)
    header = ["ply", "format binary_little_endian 1.0", "comment plift-ns panoptic point cloud"]
    header.append(f"element vertex {len(points)}")
    for name in PLY_DTYPE.names:
        header.append(f"property {_PLY_TYPES[PLY_DTYPE[name].str.replace('|', '')]} {name}")
    header.append("end_header")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(points.tobytes())


def read_ply(path: Path) -> np.ndarray:
    """Read a binary little-endian PLY written by :func:`write_ply` (or any PLY with float/uchar/int vertex
    properties) into a structured array."""
    types = {"float": "<f4", "float32": "<f4", "double": "<f8", "uchar": "u1", "uint8": "u1", "int": "<i4",
             "int32": "<i4", "uint": "<u4", "short": "<i2", "ushort": "<u2"}
    with open(path, "rb") as f:
        fields, count = [], 0
        if f.readline().strip() != b"ply":
            raise ValueError(f"{path}: not a PLY file")
        while True:
            line = f.readline().decode("ascii").strip()
            if line.startswith("format") and "binary_little_endian" not in line:
                raise ValueError(f"{path}: only binary_little_endian PLY is supported")
            if line.startswith("element vertex"):
                count = int(line.split()[-1])
            elif line.startswith("property"):
                _, typ, name = line.split()
                fields.append((name, types[typ]))
            elif line == "end_header":
                break
        return np.frombuffer(f.read(np.dtype(fields).itemsize * count), dtype=np.dtype(fields), count=count)


def to_original_coordinates(points: torch.Tensor, transform: torch.Tensor, scale: float) -> torch.Tensor:
    """Undo the dataparser: nerfstudio maps p ↦ scale · (R p + t) with ``transform`` = [R | t] (3x4)."""
    transform = transform.to(points)
    rot, trans = transform[:3, :3], transform[:3, 3]
    return (points / scale - trans) @ torch.linalg.inv(rot).T


def check_export_args(num_points: int, split: str) -> None:
    """Raise :class:`PliftDataError` for a non-positive ``num_points`` or an unknown ``split``."""
    if num_points <= 0:
        raise PliftDataError(f"--num-points must be positive, got {num_points}")
    if split not in SPLITS:
        raise PliftDataError(f"--split must be one of {', '.join(SPLITS)}, got '{split}'")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "class"


@torch.no_grad()
def panoptic_points(
    pipeline: Any,
    num_points: int = 200_000,
    split: str = "train",
    min_accumulation: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> Dict[str, torch.Tensor]:
    """Render random pixels of the ``split`` views; return points (normalised scene coordinates), rgb [0,1], class
    and instance ids of the opaque ones (at most ``num_points``)."""
    from nerfstudio.cameras.rays import RayBundle

    check_export_args(num_points, split)
    model = pipeline.model
    dataset = pipeline.datamanager.train_dataset if split == "train" else pipeline.datamanager.eval_dataset
    cameras = dataset.cameras.to(model.device)
    n_cams = len(cameras)
    generator = torch.Generator().manual_seed(seed)
    per_camera = max(1, math.ceil(1.5 * num_points / n_cams))
    chunk = int(model.config.eval_num_rays_per_chunk)
    was_training = model.training
    model.eval()
    collected: Dict[str, List[torch.Tensor]] = {"xyz": [], "rgb": [], "class_id": [], "instance_id": []}
    total = 0
    columns = (
        TextColumn("[bold blue]panoptic point cloud"), BarColumn(), MofNCompleteColumn(), TextColumn("views"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=CONSOLE, disable=not progress) as bar:
            task = bar.add_task("render", total=n_cams)
            for cam in torch.randperm(n_cams, generator=generator).tolist():
                h, w = int(cameras.height[cam]), int(cameras.width[cam])
                pick = torch.randperm(h * w, generator=generator)[: min(per_camera, h * w)]
                coords = torch.stack([pick // w, pick % w], dim=-1).float() + 0.5
                rays: RayBundle = cameras.generate_rays(camera_indices=cam, coords=coords.to(model.device))
                for i in range(0, len(rays), chunk):
                    out = model(rays[i : i + chunk])
                    keep = out["accumulation"][:, 0] >= min_accumulation
                    if not keep.any():
                        continue
                    sem, inst = model.panoptic_labels(out["semantics"][keep], out["instance"][keep])
                    sub = rays[i : i + chunk]
                    xyz = sub.origins[keep] + sub.directions[keep] * out["depth"][keep]
                    collected["xyz"].append(xyz.cpu())
                    collected["rgb"].append(out["rgb"][keep].clamp(0, 1).cpu())
                    collected["class_id"].append(sem.cpu())
                    collected["instance_id"].append(inst.cpu())
                    total += int(keep.sum())
                bar.advance(task)
                if total >= num_points:
                    break
    finally:
        model.train(was_training)
    if total == 0:
        empty = torch.zeros(0)
        return {"xyz": empty.reshape(0, 3), "rgb": empty.reshape(0, 3), "class_id": empty.long(),
                "instance_id": empty.long()}
    return {k: torch.cat(v)[:num_points] for k, v in collected.items()}


def export_panoptic_point_cloud(
    pipeline: Any,
    output_dir: Path,
    num_points: int = 200_000,
    split: str = "train",
    min_accumulation: float = 0.5,
    original_coordinates: bool = True,
    per_instance: bool = True,
    progress: bool = True,
) -> Dict[str, Any]:
    """Render, write the PLY files and the JSON summary; returns the summary."""
    pts = panoptic_points(pipeline, num_points, split, min_accumulation, progress=progress)
    xyz = pts["xyz"]
    dpo = getattr(pipeline.datamanager, "train_dataparser_outputs", None)
    if original_coordinates and dpo is not None:
        xyz = to_original_coordinates(xyz, dpo.dataparser_transform, float(dpo.dataparser_scale))
    points = np.zeros(len(xyz), dtype=PLY_DTYPE)
    for i, axis in enumerate("xyz"):
        points[axis] = xyz[:, i].numpy()
    rgb = np.clip(np.rint(pts["rgb"].numpy() * 255), 0, 255).astype(np.uint8)
    points["red"], points["green"], points["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    points["class_id"] = pts["class_id"].numpy()
    points["instance_id"] = pts["instance_id"].numpy()

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    cloud = output_dir / "panoptic_pointcloud.ply"
    write_ply(cloud, points)
    class_set = pipeline.model.class_set
    instances: List[Dict[str, Any]] = []
    stuff: List[Dict[str, Any]] = []
    pairs = np.unique(np.stack([points["class_id"], points["instance_id"]], axis=1), axis=0) if len(points) else []
    for c, i in pairs:
        sel = points[(points["class_id"] == c) & (points["instance_id"] == i)]
        is_thing = bool(class_set.isthing[c]) and i > 0
        name = class_set.names[c]
        rel = f"instances/{_slug(name)}_{int(i)}.ply" if is_thing else f"stuff/{_slug(name)}.ply"
        if per_instance:
            write_ply(output_dir / rel, sel)
        xyz_sel = np.stack([sel["x"], sel["y"], sel["z"]], axis=1)
        entry = {
            "class_id": int(c),
            "class_name": name,
            "instance_id": int(i),
            "num_points": int(len(sel)),
            "bbox_min": xyz_sel.min(axis=0).round(6).tolist(),
            "bbox_max": xyz_sel.max(axis=0).round(6).tolist(),
            "file": rel if per_instance else None,
        }
        (instances if is_thing else stuff).append(entry)
    summary = {
        "point_cloud": cloud.name,
        "num_points": int(len(points)),
        "coordinates": "original" if original_coordinates and dpo is not None else "normalised",
        "fields": list(PLY_DTYPE.names),
        "classes": [{"id": k, "name": n, "isthing": bool(t)} for k, (n, t) in
                    enumerate(zip(class_set.names, class_set.isthing))],
        "instances": instances,
        "stuff": stuff,
    }
    (output_dir / "panoptic_export.json").write_text(json.dumps(summary, indent=2))
    return summary


@dataclass
class ExportPanoptic:
    """Export a panoptic point cloud (PLY: xyz, rgb, class_id, instance_id) and per-instance point sets."""

    load_config: Path
    """config.yml of the training run."""
    output_dir: Path = Path("exports/panoptic")
    """Folder for panoptic_pointcloud.ply, instances/, stuff/ and panoptic_export.json."""
    num_points: int = 200_000
    """Number of points (at most) in the point cloud."""
    split: Split = "train"
    """Views whose pixels are back-projected: train or eval."""
    min_accumulation: float = 0.5
    """Keep rays at least this opaque."""
    normalised_coordinates: bool = False
    """Write points in the model's normalised scene coordinates instead of the original world coordinates."""
    per_instance: bool = True
    """Also write one PLY per instance / stuff class."""
    eval_num_rays_per_chunk: Optional[int] = None
    overwrite: bool = False
    """Replace a non-empty --output-dir (whole: files of an earlier export do not survive)."""

    def main(self) -> Dict[str, Any]:
        from nerfstudio.utils.eval_utils import eval_setup

        allow_trusted_checkpoints()
        check_export_args(self.num_points, self.split)
        refuse_existing(self.output_dir, self.overwrite, is_dir=True)
        if not Path(self.load_config).is_file():
            raise PliftDataError("training config not found", self.load_config)
        _, pipeline, _, _ = eval_setup(
            self.load_config, eval_num_rays_per_chunk=self.eval_num_rays_per_chunk, test_mode="inference"
        )
        with atomic_output_dir(self.output_dir, self.overwrite) as tmp:
            summary = export_panoptic_point_cloud(
                pipeline, tmp, self.num_points, self.split, self.min_accumulation,
                original_coordinates=not self.normalised_coordinates, per_instance=self.per_instance,
            )
        CONSOLE.print(
            f"[bold green]Wrote {summary['num_points']} points, {len(summary['instances'])} instances and "
            f"{len(summary['stuff'])} stuff classes to {self.output_dir}"
        )
        return summary


def entrypoint() -> None:
    """Console script ``plift-export``: bad arguments or outputs end in one line and exit status 2."""
    exit_on_data_error("plift-export", lambda: tyro.cli(ExportPanoptic).main(), CONSOLE)


if __name__ == "__main__":
    entrypoint()
