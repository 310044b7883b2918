"""Shared pieces of the importers: camera conventions, class maps, resizing, scene box, atomic scene writing.

Conventions (documented in the README's "Real scenes" section):

* Poses. Source layouts store camera-to-world matrices in the OpenCV convention (x right, y down, looking along +z);
  the data contract uses nerfstudio/OpenGL (x right, y up, looking along -z): ``c2w_gl = c2w_cv @ diag(1, -1, -1, 1)``.
  World coordinates are kept as they are (metres); the dataparser centres and scales the scene box into [-1, 1]^3.
* Pixel centres. OpenCV-style intrinsics (ScanNet, Semantic-NeRF, the official Panoptic Lifting release) put the centre
  of pixel ``(i, j)`` at ``(i, j)``; nerfstudio casts rays through ``(i + 0.5, j + 0.5)``. The importers therefore write
  ``cx + 0.5`` and ``cy + 0.5``, so a 3D point lands on the same pixel through the original and the imported camera.
  Resizing by ``s`` then scales ``fx, fy, cx, cy`` by ``s`` (exact in the +0.5 convention).
* Scene box. From depth when the layout has it: every frame's depth is back-projected (subsampled), the box spans the
  0.5th-99.5th percentiles of those points plus the camera centres, grown by 5% of its size (at least 0.1 m) on every
  side. Without depth: the box around the camera centres and their view frusta cut at ``max_depth`` metres.
* Writing. A scene is written into a temporary sibling folder that is renamed to the destination only once complete.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image
from rich.console import Console

from plift_ns.data.classes import BUILTIN_CLASS_SETS, ClassSet, load_class_set
from plift_ns.data.label_io import read_label_png, write_label_png
from plift_ns.errors import PliftDataError

CONSOLE = Console(width=120)
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplying a camera-to-world matrix by this flips the camera's y and z axes (OpenCV <-> OpenGL)."""
PIXEL_CENTER_SHIFT = 0.5
"""Added to an OpenCV principal point to get nerfstudio's (pixel centres at +0.5)."""

# --------------------------------------------------------------------------------------------------- cameras


def opencv_to_opengl(c2w_cv: np.ndarray) -> np.ndarray:
    """Camera-to-world 4x4 in the OpenCV convention -> nerfstudio/OpenGL (the same map converts back)."""
    c2w = np.asarray(c2w_cv, dtype=np.float64)
    if c2w.shape == (3, 4):
        c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
    return c2w @ OPENCV_TO_OPENGL


opengl_to_opencv = opencv_to_opengl


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Pinhole intrinsics in nerfstudio's convention (the centre of pixel ``(i, j)`` is at ``(i + 0.5, j + 0.5)``)."""

    fx: float
    fy: float
    cx: float
    cy: float
    w: int
    h: int

    @classmethod
    def from_opencv(cls, k: np.ndarray, w: int, h: int) -> "PinholeIntrinsics":
        """From a 3x3 (or 4x4) OpenCV camera matrix for a ``w`` x ``h`` image (pixel centres at integers)."""
        k = np.asarray(k, dtype=np.float64)
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]) + PIXEL_CENTER_SHIFT,
                   float(k[1, 2]) + PIXEL_CENTER_SHIFT, int(w), int(h))

    def resized(self, w: int, h: int) -> "PinholeIntrinsics":
        """The same camera for the image resampled to ``w`` x ``h``."""
        sx, sy = w / self.w, h / self.h
        return PinholeIntrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, int(w), int(h))

    def to_json(self) -> Dict[str, Any]:
        return {"fl_x": self.fx, "fl_y": self.fy, "cx": self.cx, "cy": self.cy, "w": self.w, "h": self.h}


def rigid_pose(c2w: np.ndarray, path: Path, what: str = "pose") -> np.ndarray:
    """A finite 4x4 camera-to-world whose rotation is re-orthonormalised (SVD) if it is within 1e-2 of a rotation."""
    c2w = np.asarray(c2w, dtype=np.float64)
    rot = c2w[:3, :3]
    u, _, vt = np.linalg.svd(rot)
    fixed = u @ vt
    if np.linalg.det(fixed) < 0 or np.max(np.abs(fixed - rot)) > 1e-2:
        raise PliftDataError(f"{what} is not a rigid camera-to-world transform (rotation is not orthonormal)", path)
    out = np.eye(4)
    out[:3, :3] = fixed
    out[:3, 3] = c2w[:3, 3]
    return out


def read_matrix(path: Path, shape: Tuple[int, int] = (4, 4)) -> np.ndarray:
    """Whitespace-separated numbers of a text matrix (e.g. a ScanNet pose); NaN/inf are returned as they are."""
    if not path.is_file():
        raise PliftDataError("file not found", path)
    try:
        values = [float(v) for v in path.read_text().split()]
    except ValueError as err:
        raise PliftDataError(f"not a matrix of numbers ({err})", path) from None
    if len(values) != shape[0] * shape[1]:
        raise PliftDataError(f"expected {shape[0]}x{shape[1]} numbers, found {len(values)}", path)
    return np.asarray(values, dtype=np.float64).reshape(shape)


def read_intrinsic_matrix(path: Path) -> np.ndarray:
    """A 3x3 camera matrix from a 3x3 or 4x4 text file (ScanNet ``intrinsic_color.txt``)."""
    if not path.is_file():
        raise PliftDataError("intrinsics file not found", path)
    try:
        values = [float(v) for v in path.read_text().split()]
    except ValueError as err:
        raise PliftDataError(f"not a matrix of numbers ({err})", path) from None
    if len(values) not in (9, 16):
        raise PliftDataError(f"expected a 3x3 or 4x4 matrix, found {len(values)} numbers", path)
    n = 3 if len(values) == 9 else 4
    k = np.asarray(values, dtype=np.float64).reshape(n, n)[:3, :3]
    if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise PliftDataError("intrinsics must be finite with positive focal lengths", path)
    return k


# --------------------------------------------------------------------------------------------------- files


def natural_key(stem: str) -> Tuple[Any, ...]:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", stem))


def require_dir(root: Path, name: str, what: str = "") -> Path:
    """``root / name``, which must be a folder."""
    path = root / name
    if not path.is_dir():
        hint = f" ({what})" if what else ""
        raise PliftDataError(f"missing folder '{name}/'{hint}", path)
    return path


def list_files(folder: Path, suffixes: Sequence[str], prefix: str = "") -> Dict[str, Path]:
    """Files of ``folder`` with one of ``suffixes``, keyed by stem without ``prefix``, in natural order."""
    found = {}
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in suffixes and p.stem.startswith(prefix):
            found[p.stem[len(prefix):]] = p
    return dict(sorted(found.items(), key=lambda kv: natural_key(kv[0])))


def read_opencv_pose(pose_dir: Path, stem: str) -> Optional[np.ndarray]:
    """OpenGL camera-to-world of a frame from its OpenCV 4x4 ``pose/<stem>.txt``; None for an invalid (inf/NaN) pose,
    which ScanNet uses to mark frames without tracking."""
    pose_path = frame_file(pose_dir, stem, (".txt",), "pose")
    c2w_cv = read_matrix(pose_path)
    if not np.all(np.isfinite(c2w_cv)):
        return None
    return opencv_to_opengl(rigid_pose(c2w_cv, pose_path))


def frame_file(folder: Path, stem: str, suffixes: Sequence[str], what: str) -> Path:
    """``folder/stem<suffix>`` for the first suffix that exists; a clear error naming the expected file otherwise."""
    for s in suffixes:
        path = folder / f"{stem}{s}"
        if path.is_file():
            return path
    raise PliftDataError(f"missing {what} for frame '{stem}' (frame counts of the folders differ)",
                         folder / f"{stem}{suffixes[0]}")


def read_rgb(path: Path) -> np.ndarray:
    """An image as (H, W, 3) uint8."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as err:
        raise PliftDataError(f"cannot read image ({err})", path) from None


def read_png(path: Path) -> np.ndarray:
    """A single-channel PNG as an (H, W) int64 array (grey RGB accepted)."""
    return read_label_png(path, grey_rgb=True)


def read_mask(path: Path) -> np.ndarray:
    """A (possibly JPEG-compressed) mask image as an (H, W) int64 array of 0/1 (grey level > 127)."""
    try:
        with Image.open(path) as im:
            return (np.asarray(im.convert("L")) > 127).astype(np.int64)
    except (OSError, ValueError) as err:
        raise PliftDataError(f"cannot read mask image ({err})", path) from None


def output_size(w: int, h: int, downscale: int) -> Tuple[int, int]:
    """(width, height) after an integer downscale factor (rounded; intrinsics are scaled by the exact ratio)."""
    if downscale < 1:
        raise PliftDataError(f"--downscale must be a positive integer (got {downscale})")
    return max(1, int(round(w / downscale))), max(1, int(round(h / downscale)))


def resize_rgb(rgb: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Area-resample (box filter) an (H, W, 3) uint8 image to ``size`` = (width, height); bicubic when enlarging."""
    if (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb
    enlarge = size[0] > rgb.shape[1] or size[1] > rgb.shape[0]
    method = Image.Resampling.BICUBIC if enlarge else Image.Resampling.BOX
    return np.asarray(Image.fromarray(rgb).resize(size, method))


def resize_depth(depth: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a depth map (no mixing across depth edges)."""
    if (depth.shape[1], depth.shape[0]) == tuple(size):
        return depth
    im = Image.fromarray(depth.astype(np.float32), mode="F").resize(size, Image.Resampling.NEAREST)
    return np.asarray(im)


def resize_probabilities(prob: np.ndarray, conf: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Bilinear resize (as the official code) of (H, W, C) probabilities and (H, W) confidences; rows renormalised."""
    if (prob.shape[1], prob.shape[0]) == tuple(size):
        return prob, conf
    import torch

    stack = np.concatenate([prob, conf[..., None]], axis=-1).astype(np.float32)
    t = torch.from_numpy(stack).permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(t, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    out = out[0].permute(1, 2, 0).numpy()
    p = np.clip(out[..., :-1], 0.0, None)
    p /= np.maximum(p.sum(-1, keepdims=True), 1e-8)
    return p, np.clip(out[..., -1], 0.0, 1.0)


def interleaved_test_indices(n: int, test_fraction: float = 0.25) -> List[int]:
    """Evenly interleaved test frames (never the first one): ``round(n * test_fraction)`` of ``n``, at least one."""
    if n < 2:
        raise PliftDataError(f"need at least 2 frames to split into train and test, found {n}")
    k = min(n - 1, max(1, int(round(n * test_fraction))))
    return sorted({int((j + 0.5) * n / k) for j in range(k)})


# --------------------------------------------------------------------------------------------------- class sets


def class_set_spec(classes: str) -> Tuple[ClassSet, Union[str, Dict[str, Any]]]:
    """The class set for ``--classes`` and what to write as ``panoptic_classes`` (a built-in name, else inline)."""
    class_set = load_class_set(classes, Path.cwd())
    return class_set, (classes if classes in BUILTIN_CLASS_SETS else class_set.to_json())


def stuff_instances_to_zero(semantics: np.ndarray, instance: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """Instance ids only on thing pixels (0 on stuff and void), as the data contract asks."""
    thing = np.zeros(max(class_set.num_classes, class_set.void_id) + 1, dtype=bool)
    thing[: class_set.num_classes] = class_set.thing_mask()
    out = np.asarray(instance, dtype=np.int64).copy()
    out[~thing[np.clip(semantics, 0, len(thing) - 1)]] = 0
    return out


def simulated_machine_labels(gt_sem: np.ndarray, gt_inst: np.ndarray, class_set: ClassSet,
                             rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Machine-like 2D labels from GT with :func:`plift_ns.synthetic.simulate_labels` (a testing aid only)."""
    from plift_ns.synthetic.noise import NoiseConfig, simulate_labels

    labels = simulate_labels(gt_sem.astype(np.int64), gt_inst.astype(np.int64), class_set, NoiseConfig(), rng)
    return {"semantics": labels.semantics, "instance": labels.instance, "probability": labels.probability,
            "confidence": labels.confidence}


# --------------------------------------------------------------------------------------------------- scene box


class SceneBoxEstimator:
    """Accumulates back-projected depth points and camera frusta; returns ``[[xmin, ymin, zmin], [xmax, ...]]``."""

    def __init__(self, max_depth: float = 4.0, max_points_per_frame: int = 5000) -> None:
        self.max_depth = float(max_depth)
        self.max_points = int(max_points_per_frame)
        self.points: List[np.ndarray] = []
        self.cameras: List[np.ndarray] = []
        self.frusta: List[np.ndarray] = []

    def add_camera(self, c2w_gl: np.ndarray, intr: PinholeIntrinsics) -> None:
        self.cameras.append(c2w_gl[:3, 3].copy())
        corners = np.array([[0, 0], [intr.w, 0], [0, intr.h], [intr.w, intr.h]], dtype=np.float64)
        d = self.max_depth
        cam = np.stack([(corners[:, 0] - intr.cx) / intr.fx * d, -(corners[:, 1] - intr.cy) / intr.fy * d,
                        -np.full(4, d)], 1)
        self.frusta.append(cam @ c2w_gl[:3, :3].T + c2w_gl[:3, 3])

    def add_depth(self, depth_m: np.ndarray, c2w_gl: np.ndarray, intr: PinholeIntrinsics) -> None:
        """Back-project a z-depth map (metres, 0 = invalid) taken by the camera ``intr`` at ``c2w_gl``."""
        h, w = depth_m.shape
        stride = max(1, int(math.ceil(math.sqrt(h * w / self.max_points))))
        v, u = np.mgrid[0:h:stride, 0:w:stride]
        d = depth_m[v, u].astype(np.float64)
        ok = np.isfinite(d) & (d > 0)
        if not ok.any():
            return
        sx, sy = intr.w / w, intr.h / h  # depth maps may be smaller than the colour camera's image
        x = ((u[ok] + 0.5) * sx - intr.cx) / intr.fx * d[ok]
        y = -((v[ok] + 0.5) * sy - intr.cy) / intr.fy * d[ok]
        cam = np.stack([x, y, -d[ok]], 1)
        self.points.append((cam @ c2w_gl[:3, :3].T + c2w_gl[:3, 3]).astype(np.float32))

    @property
    def source(self) -> str:
        return "depth" if self.points else "camera frusta"

    def box(self) -> List[List[float]]:
        if not self.cameras:
            raise PliftDataError("no cameras: cannot compute a scene box")
        cams = np.asarray(self.cameras)
        if self.points:
            pts = np.concatenate(self.points).astype(np.float64)
            lo = np.minimum(np.percentile(pts, 0.5, axis=0), cams.min(0))
            hi = np.maximum(np.percentile(pts, 99.5, axis=0), cams.max(0))
            margin = np.maximum(0.05 * (hi - lo), 0.1)
        else:
            pts = np.concatenate([cams] + self.frusta)
            lo, hi = pts.min(0), pts.max(0)
            margin = np.full(3, 0.1)
        return [[float(v) for v in lo - margin], [float(v) for v in hi + margin]]


# --------------------------------------------------------------------------------------------------- writing


@dataclass
class Frame:
    """One imported frame, in the output resolution; label arrays are class-set ids (void = the class set's void)."""

    name: str
    c2w_gl: np.ndarray
    rgb: Optional[np.ndarray] = None
    rgb_source: Optional[Path] = None
    """Copy this file as the image instead of encoding ``rgb`` (used when no resampling is needed)."""
    semantics: Optional[np.ndarray] = None
    instance: Optional[np.ndarray] = None
    probability: Optional[np.ndarray] = None
    confidence: Optional[np.ndarray] = None
    gt_semantics: Optional[np.ndarray] = None
    gt_instance: Optional[np.ndarray] = None
    depth_m: Optional[np.ndarray] = None


def check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise PliftDataError("output exists and is not a folder", output)
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise PliftDataError("output folder is not empty (pass --overwrite to replace it)", output)


class SceneWriter:
    """Writes a data-contract scene into a temporary sibling of ``output``; :meth:`finish` renames it into place.

    Use as a context manager: on any error the temporary folder is removed and ``output`` is left untouched.
    """

    def __init__(self, output: Path, overwrite: bool = False) -> None:
        self.output = Path(output).expanduser().absolute()
        self.overwrite = overwrite
        check_output(self.output, overwrite)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.output.name}.", suffix=".tmp", dir=self.output.parent))
        self.frames: List[Dict[str, Any]] = []

    def __enter__(self) -> "SceneWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _path(self, sub: str, name: str) -> Tuple[Path, str]:
        rel = f"{sub}/{name}"
        (self.tmp / sub).mkdir(exist_ok=True)
        return self.tmp / rel, rel

    def add(self, frame: Frame) -> Dict[str, Any]:
        """Write a frame's files; returns (and records) its ``frames`` entry. GT goes only to ``gt_*`` keys."""
        if frame.rgb_source is not None:
            path, rel = self._path("images", f"{frame.name}{frame.rgb_source.suffix.lower()}")
            shutil.copyfile(frame.rgb_source, path)
        elif frame.rgb is not None:
            path, rel = self._path("images", f"{frame.name}.png")
            Image.fromarray(frame.rgb).save(path)
        else:
            raise ValueError("a frame needs rgb or rgb_source")
        entry: Dict[str, Any] = {"file_path": rel, "transform_matrix": [[float(v) for v in row] for row in frame.c2w_gl]}
        if (frame.semantics is None) != (frame.instance is None):
            raise ValueError("semantics and instance come together")
        for key, sub, array, dtype in (
            ("semantics_path", "semantics", frame.semantics, None),
            ("instance_path", "instance", frame.instance, np.uint16),
            ("gt_semantics_path", "gt_semantics", frame.gt_semantics, None),
            ("gt_instance_path", "gt_instance", frame.gt_instance, np.uint16),
        ):
            if array is None:
                continue
            path, entry[key] = self._path(sub, f"{frame.name}.png")
            write_label_png(path, array, dtype)
        if frame.probability is not None:
            path, entry["probabilities_path"] = self._path("probabilities", f"{frame.name}.npz")
            conf = frame.confidence if frame.confidence is not None else np.ones(frame.probability.shape[:2])
            np.savez_compressed(path, probability=frame.probability.astype(np.float16),
                                confidence=np.asarray(conf).astype(np.float16))
        if frame.depth_m is not None:
            path, entry["depth_file_path"] = self._path("depth", f"{frame.name}.png")
            mm = np.clip(np.rint(np.nan_to_num(frame.depth_m, nan=0.0, posinf=0.0) * 1000.0), 0, 65535)
            Image.fromarray(mm.astype(np.uint16)).save(path)
        self.frames.append(entry)
        return entry

    def finish(self, meta: Dict[str, Any]) -> Path:
        """Write transforms.json (``meta`` + the frames) and move the scene into place; returns the output folder."""
        meta = {**meta, "frames": self.frames}
        (self.tmp / "transforms.json").write_text(json.dumps(meta, indent=1))
        check_output(self.output, self.overwrite)
        if not self.output.exists():
            os.replace(self.tmp, self.output)
            return self.output
        old = Path(tempfile.mkdtemp(prefix=f".{self.output.name}.", suffix=".old", dir=self.output.parent))
        old.rmdir()
        os.replace(self.output, old)
        try:
            os.replace(self.tmp, self.output)
        except BaseException:
            os.replace(old, self.output)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return self.output


def transforms_meta(intr: PinholeIntrinsics, panoptic_classes: Union[str, Dict[str, Any]], train: Iterable[str],
                    test: Iterable[str], scene_box: List[List[float]], has_depth: bool,
                    provenance: Dict[str, Any]) -> Dict[str, Any]:
    """Top-level transforms.json fields of an imported scene (``frames`` is added by :meth:`SceneWriter.finish`)."""
    meta: Dict[str, Any] = {
        "camera_model": "OPENCV",
        **intr.to_json(),
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        "train_filenames": list(train),
        "test_filenames": list(test),
        "scene_box": scene_box,
        "panoptic_classes": panoptic_classes,
        "import": provenance,
    }
    if has_depth:
        meta["depth_unit_scale_factor"] = 0.001
    return meta


def report(output: Path, num_frames: int, num_train: int, num_test: int, skipped: Sequence[str], notes: Sequence[str]) -> None:
    """Print a short summary of an import."""
    CONSOLE.print(f"[bold green]Wrote {output}[/]: {num_frames} frames ({num_train} train, {num_test} test)")
    if skipped:
        shown = ", ".join(skipped[:8]) + (" ..." if len(skipped) > 8 else "")
        CONSOLE.print(f"[yellow]Skipped {len(skipped)} frame(s) with invalid (NaN/inf) poses: {shown}")
    for note in notes:
        CONSOLE.print(f"[yellow]{note}")


@dataclass
class ImportOptions:
    """Options shared by every importer (``src`` and ``dst`` are positional on the command line)."""

    downscale: int = 1
    """Integer downscale factor of the written images (area resampling; labels nearest; intrinsics scaled)."""
    classes: str = "scannet21"
    """Class set of the written scene: scannet21, scannet31 or a class-set JSON path."""
    overwrite: bool = False
    """Replace a non-empty destination folder."""
    frame_step: int = 1
    """Keep every n-th frame of the source (before the train/test split)."""
    max_depth: float = 4.0
    """Without depth maps: the view frusta are cut at this depth (metres) for the scene box."""


LabelsFrom = Literal["none", "gt-with-noise"]


def input_labels(frame: "Frame", labels_from: str, class_set: ClassSet, rng: np.random.Generator) -> None:
    """Fill ``frame``'s machine labels from its GT per ``--labels-from`` (``none``: leave them for plift-labels)."""
    if labels_from == "none":
        return
    if labels_from != "gt-with-noise":
        raise PliftDataError(f"unknown --labels-from '{labels_from}' (none, gt-with-noise)")
    assert frame.gt_semantics is not None and frame.gt_instance is not None
    labels = simulated_machine_labels(frame.gt_semantics, frame.gt_instance, class_set, rng)
    frame.semantics, frame.instance = labels["semantics"], labels["instance"]
    frame.probability, frame.confidence = labels["probability"], labels["confidence"]


def labels_note(labels_from: str) -> List[str]:
    if labels_from == "none":
        return ["no input labels were written (--labels-from none): run `plift-labels --data <dst>` before training"]
    return ["input labels were SIMULATED from the ground truth (--labels-from gt-with-noise): a testing aid, "
            "not a benchmark setting"]
