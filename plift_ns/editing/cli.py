"""``plift-edit``: render a trained scene with 3D instances deleted, duplicated or moved (paper Fig. 5).

Examples::

    plift-edit --load-config CONFIG.yml --list-instances
    plift-edit --load-config CONFIG.yml --delete chair:3 --output-path renders/no-chair.mp4
    plift-edit --load-config CONFIG.yml --duplicate 5:2 --translate 0.4 0 0 --rotate-z 90 --output-path renders/two.mp4
    plift-edit --load-config CONFIG.yml --move sofa:1 --translate 0 0.3 0 --camera-path dataset --output-path frames/

``CLASS:ID``: a class name or index and the instance id as rendered (``instance_colormap`` numbering; 0 = the whole
class, e.g. a stuff class, for ``--delete``). Transforms are in normalised scene coordinates (the model's world frame,
the scene box scaled into [-1, 1]³); rotation and scale are about the instance's centre. The frames are written with
nerfstudio's ``ns-render`` machinery: a video for ``.mp4``/``.mov``/``.webm`` paths, else a folder of images.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import torch
import tyro
from rich.console import Console
from rich.table import Table

from plift_ns.editing.field import (
    Delete,
    Duplicate,
    Edit,
    Move,
    apply_edits,
    density_at,
    instance_region,
    make_transform,
    sample_labels,
)
from plift_ns.errors import PliftDataError

CONSOLE = Console(width=120)
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv")


def ensure_ffmpeg() -> str:
    """An ffmpeg binary on PATH (nerfstudio's video writer needs one): imageio-ffmpeg's, linked into a temp dir."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    link_dir = Path(tempfile.mkdtemp(prefix="plift-ffmpeg-"))
    (link_dir / "ffmpeg").symlink_to(exe)
    os.environ["PATH"] = f"{link_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return str(link_dir / "ffmpeg")


def parse_target(text: str, class_names: List[str]) -> Tuple[int, int]:
    """``CLASS:ID`` → (class index, instance id); CLASS is a class name or an index."""
    if ":" not in text:
        raise PliftDataError(f"'{text}': expected CLASS:ID (e.g. chair:3 or 5:3)")
    cls, _, ident = text.rpartition(":")
    if cls.isdigit():
        c = int(cls)
    elif cls in class_names:
        c = class_names.index(cls)
    else:
        raise PliftDataError(f"'{text}': unknown class '{cls}' (classes: {', '.join(class_names)})")
    if not 0 <= c < len(class_names):
        raise PliftDataError(f"'{text}': class index {c} out of range 0..{len(class_names) - 1}")
    try:
        i = int(ident)
    except ValueError:
        raise PliftDataError(f"'{text}': instance id '{ident}' is not an integer") from None
    return c, i


@torch.no_grad()
def list_instances(field: Any, class_set: Any, resolution: int = 48, density_threshold: float = 1.0) -> List[Dict]:
    """The 3D thing instances of a field: occupied grid points grouped by (class, instance id), largest first."""
    aabb = field.aabb.to(torch.float32)
    axes = [torch.linspace(float(aabb[0, d]), float(aabb[1, d]), resolution, device=aabb.device) for d in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    occupied = grid[density_at(field, grid) > density_threshold]
    sem, inst = sample_labels(field, occupied)
    rows = []
    for c in class_set.thing_ids:
        in_class = sem == c
        ids, counts = torch.unique(inst[in_class], return_counts=True)
        for i, n in zip(ids.tolist(), counts.tolist()):
            pts = occupied[in_class & (inst == i)]
            rows.append({"class_id": c, "class_name": class_set.names[c], "instance_id": i, "grid_points": n,
                         "center": [round(float(v), 4) for v in pts.mean(dim=0)]})
    return sorted(rows, key=lambda r: -r["grid_points"])


@dataclass
class EditScene:
    """Render a trained plift-ns scene with instances deleted / duplicated / moved."""

    load_config: Path
    """config.yml of the training run."""
    output_path: Path = Path("renders/edited.mp4")
    """A video (.mp4/.mov/.webm/.mkv) or a folder for the frames."""
    delete: List[str] = field(default_factory=list)
    """Instances to delete, CLASS:ID (class name or index : rendered instance id; ID 0 = the whole class)."""
    duplicate: List[str] = field(default_factory=list)
    """Instances to duplicate at the transformed pose, CLASS:ID."""
    move: List[str] = field(default_factory=list)
    """Instances to move to the transformed pose, CLASS:ID."""
    translate: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Translation of duplicated / moved instances (normalised scene units)."""
    rotate_z: float = 0.0
    """Rotation (degrees) about the z axis through the instance's centre."""
    scale: float = 1.0
    """Uniform scale about the instance's centre."""
    camera_path: Literal["interpolate", "dataset", "camera-path"] = "interpolate"
    """interpolate between the pose-source views, render the views themselves, or a viewer camera-path JSON."""
    pose_source: Literal["eval", "train"] = "eval"
    """Views used by interpolate / dataset."""
    camera_path_filename: Optional[Path] = None
    """Camera path JSON exported by the viewer (for --camera-path camera-path)."""
    interpolation_steps: int = 10
    """Frames between two consecutive views (interpolate)."""
    frame_rate: int = 24
    rendered_output_names: List[str] = field(default_factory=lambda: ["rgb", "panoptic"])
    """Outputs side by side in each frame: rgb, depth, semantics_colormap, instance_colormap, panoptic, ..."""
    downscale_factor: float = 1.0
    image_format: Literal["png", "jpeg"] = "png"
    max_frames: Optional[int] = None
    """Render only the first n frames of the path."""
    list_instances: bool = False
    """Print the 3D instances (CLASS:ID, size, centre) and exit."""
    region_resolution: int = 64
    """Grid resolution used to find each edited instance's extent."""

    def main(self) -> Optional[Path]:
        from nerfstudio.utils.eval_utils import eval_setup

        import plift_ns.config  # noqa: F401  (weights-only-safe checkpoint types)

        if not self.load_config.exists():
            raise PliftDataError("training config not found", self.load_config)
        _, pipeline, _, _ = eval_setup(self.load_config, test_mode="inference")
        model = pipeline.model
        model.eval()
        names = list(model.class_set.names)
        if self.list_instances:
            self._print_instances(list_instances(model.field, model.class_set))
            return None
        edits = self.build_edits(model, names)
        if not edits:
            CONSOLE.print("[yellow]No edits given: rendering the unedited scene.")
        edited = apply_edits(model, edits, region_resolution=self.region_resolution)
        edited.eval()
        for e in edited.edits:
            if edited.region(e.class_id, e.instance_id) is None:
                CONSOLE.print(f"[yellow]Instance {names[e.class_id]}:{e.instance_id} not found in 3D; edit has no effect")
        cameras = self.cameras(pipeline)
        return render_cameras(
            pipeline, cameras, self.output_path, self.rendered_output_names, self.frame_rate, self.downscale_factor,
            self.image_format,
        )

    def build_edits(self, model: Any, names: List[str]) -> List[Edit]:
        edits: List[Edit] = [Delete(*parse_target(t, names)) for t in self.delete]
        for kind, targets in (("duplicate", self.duplicate), ("move", self.move)):
            for t in targets:
                c, i = parse_target(t, names)
                region = instance_region(model.field, c, i, self.region_resolution)
                center = region.center.tolist() if region is not None else None
                transform = make_transform(self.translate, self.rotate_z, center, self.scale)
                edits.append(Duplicate(c, i, transform) if kind == "duplicate" else Move(c, i, transform))
        return edits

    def cameras(self, pipeline: Any) -> Any:
        from nerfstudio.cameras.camera_paths import get_interpolated_camera_path, get_path_from_json

        if self.camera_path == "camera-path":
            if self.camera_path_filename is None:
                raise PliftDataError("--camera-path camera-path needs --camera-path-filename")
            cameras = get_path_from_json(json.loads(Path(self.camera_path_filename).read_text()))
        else:
            dm = pipeline.datamanager
            dataset = dm.eval_dataset if self.pose_source == "eval" else dm.train_dataset
            cameras = dataset.cameras
            if self.camera_path == "interpolate" and len(cameras) > 1:
                cameras = get_interpolated_camera_path(cameras, steps=self.interpolation_steps, order_poses=False)
        if self.max_frames is not None:
            cameras = cameras[: self.max_frames]
        return cameras

    @staticmethod
    def _print_instances(rows: List[Dict]) -> None:
        table = Table(title="3D instances (from a grid of the field)")
        for col in ("CLASS:ID", "class", "grid points", "centre"):
            table.add_column(col)
        for r in rows:
            table.add_row(f"{r['class_id']}:{r['instance_id']}", r["class_name"], str(r["grid_points"]),
                          str(r["center"]))
        CONSOLE.print(table)


def render_cameras(
    pipeline: Any,
    cameras: Any,
    output_path: Path,
    rendered_output_names: List[str],
    frame_rate: int = 24,
    downscale_factor: float = 1.0,
    image_format: str = "png",
) -> Path:
    """Render ``cameras`` with nerfstudio's ns-render writer: a video (by suffix) or a folder of images."""
    from nerfstudio.scripts.render import _render_trajectory_video

    output_path = Path(output_path)
    video = output_path.suffix.lower() in VIDEO_SUFFIXES
    if video:
        ensure_ffmpeg()
    _render_trajectory_video(
        pipeline,
        cameras,
        output_filename=output_path,
        rendered_output_names=rendered_output_names,
        rendered_resolution_scaling_factor=1.0 / downscale_factor,
        seconds=len(cameras) / frame_rate,
        output_format="video" if video else "images",
        image_format=image_format,  # type: ignore[arg-type]
    )
    return output_path


def entrypoint() -> None:
    """Console script ``plift-edit``."""
    tyro.cli(EditScene).main()


if __name__ == "__main__":
    entrypoint()
