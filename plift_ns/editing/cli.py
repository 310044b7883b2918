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

Every ``CLASS:ID`` must name a class of the model and an instance found in 3D (else the run stops before rendering,
listing the valid classes / ids). An existing output (a file, or a non-empty folder) is refused unless
``--overwrite``; the frames are rendered to a temporary sibling that replaces the output whole once complete.
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

from plift_ns.checkpoints import allow_trusted_checkpoints
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
from plift_ns.errors import PliftDataError, exit_on_data_error
from plift_ns.io.atomic import atomic_output_dir, atomic_output_file, refuse_existing

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


def split_target(text: str) -> Tuple[str, int]:
    """``CLASS:ID`` → (CLASS text, instance id); checks the syntax only (no model needed)."""
    if ":" not in text:
        raise PliftDataError(f"'{text}': expected CLASS:ID (e.g. chair:3 or 5:3)")
    cls, _, ident = text.rpartition(":")
    try:
        return cls, int(ident)
    except ValueError:
        raise PliftDataError(f"'{text}': instance id '{ident}' is not an integer") from None


def parse_target(text: str, class_names: List[str]) -> Tuple[int, int]:
    """``CLASS:ID`` → (class index, instance id); CLASS is a class name or an index."""
    cls, i = split_target(text)
    if cls.isdigit():
        c = int(cls)
    elif cls in class_names:
        c = class_names.index(cls)
    else:
        raise PliftDataError(f"'{text}': unknown class '{cls}' (classes: {', '.join(class_names)})")
    if not 0 <= c < len(class_names):
        raise PliftDataError(f"'{text}': class index {c} out of range 0..{len(class_names) - 1}")
    return c, i


@torch.no_grad()
def instances_in_3d(field: Any, resolution: int = 64, density_threshold: float = 1.0) -> Dict[int, List[int]]:
    """Class → sorted instance ids (rendered numbering) of the occupied points of a ``resolution``³ grid: the same
    grid and labels :func:`~plift_ns.editing.field.instance_region` finds an edited instance's region on."""
    aabb = field.aabb.to(torch.float32)
    axes = [torch.linspace(float(aabb[0, d]), float(aabb[1, d]), resolution, device=aabb.device) for d in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    sem, inst = sample_labels(field, grid[density_at(field, grid) > density_threshold])
    pairs = torch.unique(torch.stack([sem, inst], dim=-1), dim=0).tolist() if len(sem) else []
    found: Dict[int, List[int]] = {}
    for c, i in pairs:
        found.setdefault(int(c), []).append(int(i))
    return {c: sorted(ids) for c, ids in found.items()}


def check_targets_in_3d(
    targets: List[str], class_names: List[str], found: Dict[int, List[int]]
) -> None:
    """Raise :class:`PliftDataError` for a ``CLASS:ID`` whose instance is not in ``found`` (see
    :func:`instances_in_3d`; ID 0 = the whole class, present if any of its points is), listing the ids that exist."""
    for text in targets:
        c, i = parse_target(text, class_names)
        ids = found.get(c, [])
        if ids and (i == 0 or i in ids):
            continue
        name = class_names[c]
        if ids:
            have = f"ids of {name} in 3D: 0 (the whole class), {', '.join(map(str, ids))}"
        else:
            have = f"no point of class {name} found in 3D; see --list-instances"
        raise PliftDataError(f"'{text}': instance {i} of class {name} is not in the 3D scene ({have})")


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
    overwrite: bool = False
    """Replace an existing output video / non-empty frame folder."""

    @property
    def targets(self) -> List[str]:
        """Every CLASS:ID argument (--delete, --duplicate, --move)."""
        return [*self.delete, *self.duplicate, *self.move]

    def check_args(self) -> None:
        """Checks that need no model: the config exists, CLASS:ID syntax, the output may be written."""
        if not self.load_config.is_file():
            raise PliftDataError("training config not found", self.load_config)
        for text in self.targets:
            split_target(text)
        if not self.list_instances:
            refuse_existing(output_target(self.output_path), self.overwrite, is_dir=not is_video(self.output_path))

    def main(self) -> Optional[Path]:
        from nerfstudio.utils.eval_utils import eval_setup

        allow_trusted_checkpoints()
        self.check_args()
        _, pipeline, _, _ = eval_setup(self.load_config, test_mode="inference")
        model = pipeline.model
        model.eval()
        names = list(model.class_set.names)
        if self.list_instances:
            self._print_instances(list_instances(model.field, model.class_set))
            return None
        for text in self.targets:
            parse_target(text, names)
        if self.targets:
            check_targets_in_3d(self.targets, names, instances_in_3d(model.field, self.region_resolution))
        edits = self.build_edits(model, names)
        if not edits:
            CONSOLE.print("[yellow]No edits given: rendering the unedited scene.")
        edited = apply_edits(model, edits, region_resolution=self.region_resolution)
        edited.eval()
        cameras = self.cameras(pipeline)
        return render_cameras(
            pipeline, cameras, self.output_path, self.rendered_output_names, self.frame_rate, self.downscale_factor,
            self.image_format, overwrite=self.overwrite,
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


def is_video(output_path: Path) -> bool:
    """Whether ``output_path`` names a video (by suffix) rather than a folder of frames."""
    return Path(output_path).suffix.lower() in VIDEO_SUFFIXES


def output_target(output_path: Path) -> Path:
    """What rendering to ``output_path`` writes: the video file, or the frame folder (ns-render's parent/stem)."""
    output_path = Path(output_path)
    return output_path if is_video(output_path) else output_path.parent / output_path.stem


def render_cameras(
    pipeline: Any,
    cameras: Any,
    output_path: Path,
    rendered_output_names: List[str],
    frame_rate: int = 24,
    downscale_factor: float = 1.0,
    image_format: str = "png",
    overwrite: bool = False,
) -> Path:
    """Render ``cameras`` with nerfstudio's ns-render writer: a video (by suffix) or a folder of images, written to a
    temporary sibling and renamed into place (an existing output is refused unless ``overwrite``)."""
    from nerfstudio.scripts.render import _render_trajectory_video

    output_path = Path(output_path)
    video = is_video(output_path)
    if video:
        ensure_ffmpeg()
    target = output_target(output_path)
    with (atomic_output_file if video else atomic_output_dir)(target, overwrite) as tmp:
        _render_trajectory_video(
            pipeline,
            cameras,
            # ns-render writes frames to parent/stem of the path it is given: name the temporary folder that way
            output_filename=tmp if video else tmp.parent / f"{tmp.name}.frames",
            rendered_output_names=rendered_output_names,
            rendered_resolution_scaling_factor=1.0 / downscale_factor,
            seconds=len(cameras) / frame_rate,
            output_format="video" if video else "images",
            image_format=image_format,  # type: ignore[arg-type]
        )
    return output_path


def entrypoint() -> None:
    """Console script ``plift-edit``: bad arguments or outputs end in one line and exit status 2."""
    exit_on_data_error("plift-edit", lambda: tyro.cli(EditScene).main(), CONSOLE)


if __name__ == "__main__":
    entrypoint()
