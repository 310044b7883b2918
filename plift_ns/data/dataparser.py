"""Dataparser for the plift-ns panoptic data contract (nerfstudio ``transforms.json`` + per-frame label files).

Kept light on purpose: nerfstudio loads the ``panoptic-data`` entry point while its datamanager module is still being
imported, so this module imports only nerfstudio's base dataparser, cameras and scene box.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Type

import numpy as np
import torch
from nerfstudio.cameras import camera_utils
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from PIL import Image

from plift_ns.data.classes import load_class_set
from plift_ns.errors import PliftDataError

LABEL_KEYS = ("semantics_path", "instance_path")
"""Per-frame label files every frame must have."""
OPTIONAL_KEYS = ("probabilities_path", "gt_semantics_path", "gt_instance_path", "depth_file_path")
"""Per-frame files a frame may have."""
CAMERA_MODELS = {
    "OPENCV": CameraType.PERSPECTIVE,
    "PINHOLE": CameraType.PERSPECTIVE,
    "SIMPLE_PINHOLE": CameraType.PERSPECTIVE,
    "OPENCV_FISHEYE": CameraType.FISHEYE,
}
"""Camera models of transforms.json (as ns-process-data writes them); distortion goes to nerfstudio's Cameras."""
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


@dataclass
class PanopticDataParserConfig(DataParserConfig):
    """Reads a scene in the plift-ns panoptic data contract."""

    _target: Type = field(default_factory=lambda: PanopticDataParser)
    data: Path = Path("data/plift-demo")
    """Scene folder (holding transforms.json) or the transforms.json itself."""
    scene_scale: float = 1.5
    """Without a ``scene_box`` in transforms.json: half-size of the box around the centred, scaled cameras."""
    test_every: int = 4
    """Without train/test filenames in transforms.json: every n-th frame is a test frame (paper: 25%)."""
    check_label_sizes: bool = True
    """Read each label file's header and check its size against its image before training starts."""
    eval_split: Literal["test", "train"] = "test"
    """Frames used for evaluation (``train`` evaluates on the training views, e.g. for a scene without a split)."""


@dataclass
class PanopticDataParser(DataParser):
    """Parses transforms.json + label files into nerfstudio :class:`DataparserOutputs`.

    The world is centred on the scene box and scaled so the box fits in [-1, 1]^3; ``dataparser_transform`` and
    ``dataparser_scale`` map back to the original metres.
    """

    config: PanopticDataParserConfig
    includes_time: bool = False

    def _transforms_path(self) -> Path:
        data = Path(self.config.data)
        path = data if data.suffix == ".json" else data / "transforms.json"
        if not path.exists():
            raise PliftDataError("transforms.json not found (is --data the scene folder?)", path)
        return path

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs: Any) -> DataparserOutputs:
        meta_path = self._transforms_path()
        base = meta_path.parent
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise PliftDataError(f"not valid JSON ({err})", meta_path) from None
        frames: List[Dict[str, Any]] = meta.get("frames") or []
        if not frames:
            raise PliftDataError("no frames: 'frames' is missing or empty", meta_path)
        if "panoptic_classes" not in meta:
            raise PliftDataError("no 'panoptic_classes' (a built-in class-set name or an inline class set)", meta_path)
        class_set = load_class_set(meta["panoptic_classes"], base)

        names = [str(f.get("file_path", "")) for f in frames]
        for i, f in enumerate(frames):
            if "file_path" not in f or "transform_matrix" not in f:
                raise PliftDataError(f"frame {i} lacks 'file_path' or 'transform_matrix'", meta_path)
            for key in LABEL_KEYS:
                if key not in f:
                    raise PliftDataError(f"frame {i} ({names[i]}) lacks '{key}'", meta_path)
            for key in ("file_path",) + LABEL_KEYS + OPTIONAL_KEYS:
                if key in f:
                    scene_file(base, f[key], key, meta_path)
        indices = self._split_indices(meta, names, split, meta_path)
        frames = [frames[i] for i in indices]

        poses = np.array([f["transform_matrix"] for f in frames], dtype=np.float64)
        _check_poses(poses, [f["file_path"] for f in frames], meta_path)
        all_poses = np.array([f["transform_matrix"] for f in meta["frames"]], dtype=np.float64)
        center, scale, aabb = self._normalisation(meta, all_poses, meta_path)
        c2w = poses[:, :3, :4].copy()
        c2w[:, :3, 3] = (c2w[:, :3, 3] - center) * scale

        def paths(key: str) -> Optional[List[Path]]:
            present = [key in f for f in frames]
            if not any(present):
                return None
            if not all(present):
                missing = next(f["file_path"] for f in frames if key not in f)
                raise PliftDataError(f"'{key}' is given for some frames but not for {missing}", meta_path)
            return [scene_file(base, f[key], key, meta_path) for f in frames]

        image_filenames = [scene_file(base, f["file_path"], "file_path", meta_path) for f in frames]
        metadata: Dict[str, Any] = {"class_set": class_set, "frame_names": [f["file_path"] for f in frames]}
        for key in LABEL_KEYS + OPTIONAL_KEYS:
            metadata[key.replace("_path", "_filenames")] = paths(key)
        if metadata["depth_file_filenames"] is not None:
            unit = meta.get("depth_unit_scale_factor", 0.001)
            if not isinstance(unit, (int, float)) or unit <= 0:
                raise PliftDataError(f"'depth_unit_scale_factor' must be a positive number, got {unit!r}", meta_path)
            metadata["depth_to_scene"] = float(unit) * float(scale)  # depth file value → z-depth in scene units
        self._check_files(image_filenames, metadata)

        cameras = self._cameras(meta, frames, torch.from_numpy(c2w).float(), meta_path)
        transform = torch.eye(4)[:3, :]
        transform[:, 3] = torch.from_numpy(-center).float()
        return DataparserOutputs(
            image_filenames=image_filenames,
            cameras=cameras,
            scene_box=SceneBox(aabb=torch.from_numpy(aabb).float()),
            metadata=metadata,
            dataparser_transform=transform,
            dataparser_scale=float(scale),
        )

    def _split_indices(self, meta: Dict[str, Any], names: List[str], split: str, meta_path: Path) -> List[int]:
        if split != "train" and self.config.eval_split == "train":
            split = "train"
        lookup = {n: i for i, n in enumerate(names)}

        def listed(key: str) -> Optional[List[int]]:
            if key not in meta:
                return None
            missing = [n for n in meta[key] if n not in lookup]
            if missing:
                raise PliftDataError(f"'{key}' names {missing[0]}, which is no frame's file_path", meta_path)
            return [lookup[n] for n in meta[key]]

        train = listed("train_filenames")
        test = listed("test_filenames")
        if test is None:
            test = listed("val_filenames")
        if train is None and test is None:
            every = max(self.config.test_every, 2)
            test = [i for i in range(len(names)) if i % every == every // 2]
        # One list given: the other split is every frame it does not name (never every n-th of all frames, which
        # would put training frames in the test split).
        if train is None:
            train = sorted(set(range(len(names))) - set(test or []))
        if test is None:
            test = sorted(set(range(len(names))) - set(train))
        indices = train if split == "train" else test
        if not indices:
            hint = (
                "every frame is listed in 'train_filenames': leave some out or add 'test_filenames'"
                if split != "train" and "train_filenames" in meta
                else "add frames to the split (train_filenames / test_filenames)"
            )
            raise PliftDataError(f"the '{split}' split has no frames: {hint}", meta_path)
        return indices

    def _normalisation(self, meta: Dict[str, Any], poses: np.ndarray, meta_path: Path):
        """Centre and scale: the scene box (or the cameras' bounding box) maps into [-1, 1]^3."""
        if "scene_box" in meta:
            box = np.asarray(meta["scene_box"], dtype=np.float64)
            if box.shape != (2, 3) or not np.all(np.isfinite(box)) or np.any(box[1] <= box[0]):
                raise PliftDataError("'scene_box' must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] with max > min", meta_path)
            center = box.mean(axis=0)
            scale = 1.0 / float(np.max(box[1] - center))
            aabb = (box - center) * scale
        else:
            positions = poses[:, :3, 3]
            center = positions.mean(axis=0)
            extent = float(np.max(np.abs(positions - center)))
            scale = 1.0 / extent if extent > 0 else 1.0
            s = self.config.scene_scale
            aabb = np.array([[-s, -s, -s], [s, s, s]], dtype=np.float64)
        return center, scale, aabb

    def _cameras(self, meta: Dict[str, Any], frames: List[Dict[str, Any]], c2w: torch.Tensor, meta_path: Path) -> Cameras:
        def intrinsic(key: str) -> torch.Tensor:
            values = [f.get(key, meta.get(key)) for f in frames]
            if any(v is None for v in values):
                raise PliftDataError(f"camera intrinsic '{key}' is missing", meta_path)
            return torch.tensor(values, dtype=torch.float32)[:, None]

        fx, fy, cx, cy = intrinsic("fl_x"), intrinsic("fl_y"), intrinsic("cx"), intrinsic("cy")
        width, height = intrinsic("w").long(), intrinsic("h").long()
        model = meta.get("camera_model", "OPENCV")
        if model not in CAMERA_MODELS:
            raise PliftDataError(
                f"camera model {model} is not supported (use one of {', '.join(CAMERA_MODELS)}, or undistort the images)",
                meta_path,
            )
        distortion = torch.stack([_distortion_params(f, meta, meta_path) for f in frames])
        if model in ("PINHOLE", "SIMPLE_PINHOLE") and bool(torch.any(distortion != 0)):
            raise PliftDataError(f"camera model {model} cannot have distortion coefficients (use OPENCV)", meta_path)
        return Cameras(
            camera_to_worlds=c2w, fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height,
            distortion_params=distortion if bool(torch.any(distortion != 0)) else None,
            camera_type=CAMERA_MODELS[model],
        )

    def _check_files(self, images: List[Path], metadata: Dict[str, Any]) -> None:
        """Every file exists; label images have the size of their image (headers only)."""
        keys = [k for k in metadata if k.endswith("_filenames") and k != "frame_names" and metadata[k] is not None]
        for i, image in enumerate(images):
            if not image.exists():
                raise PliftDataError("image file not found", image)
            for key in keys:
                path = metadata[key][i]
                if not path.exists():
                    raise PliftDataError(f"{key.replace('_filenames', '')} file not found (frame {image.name})", path)
            if not self.config.check_label_sizes:
                continue
            size = _image_size(image)
            for key in keys:
                path = metadata[key][i]
                if path.suffix.lower() == ".png" and _image_size(path) != size:
                    raise PliftDataError(
                        f"size {_image_size(path)} differs from its image {image.name} {size} (width, height)", path
                    )


def scene_file(base: Path, relative: Any, key: str, meta_path: Path) -> Path:
    """``base / relative``, refused unless it stays inside the scene folder (no absolute paths, no ``..`` escape)."""
    name = str(relative)
    path = Path(os.path.normpath(base / name))
    root = Path(os.path.normpath(base))
    if Path(name).is_absolute() or (path != root and root not in path.parents):
        raise PliftDataError(
            f"'{key}' = {name} points outside the scene folder {root}; scene files must lie inside it "
            "(use a path relative to transforms.json, or copy/link the file into the scene folder)",
            meta_path,
        )
    return path


def _image_size(path: Path):
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as err:
        raise PliftDataError(f"cannot read image ({err})", path) from None


def _distortion_params(frame: Dict[str, Any], meta: Dict[str, Any], meta_path: Path) -> torch.Tensor:
    """nerfstudio's [k1, k2, k3, k4, p1, p2] of a frame: per-frame keys win over top-level ones (as ns-process-data
    writes them: ``k1, k2, p1, p2`` for OPENCV, ``k1..k4`` for OPENCV_FISHEYE, or a ``distortion_params`` list)."""
    source = frame if any(k in frame for k in (*DISTORTION_KEYS, "distortion_params")) else meta
    try:
        if "distortion_params" in source:
            params = torch.tensor([float(v) for v in source["distortion_params"]], dtype=torch.float32)
            if params.shape != (6,):
                raise ValueError(f"expected 6 values [k1, k2, k3, k4, p1, p2], got {len(params)}")
        else:
            params = camera_utils.get_distortion_params(**{k: float(source.get(k, 0.0)) for k in DISTORTION_KEYS})
    except (TypeError, ValueError) as err:
        raise PliftDataError(f"bad distortion coefficients ({err})", meta_path) from None
    if not bool(torch.all(torch.isfinite(params))):
        raise PliftDataError("distortion coefficients must be finite", meta_path)
    return params


def _check_poses(poses: np.ndarray, names: List[str], meta_path: Path) -> None:
    """Reject NaN/inf and non-rigid (non-orthonormal rotation) camera-to-world matrices."""
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)):
        raise PliftDataError(f"transform_matrix must be 4x4 (got shape {poses.shape[1:]})", meta_path)
    for pose, name in zip(poses, names):
        if not np.all(np.isfinite(pose)):
            raise PliftDataError(f"transform_matrix of {name} has NaN/inf values", meta_path)
        rot = pose[:3, :3]
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3) or not math.isclose(np.linalg.det(rot), 1.0, abs_tol=1e-3):
            raise PliftDataError(f"transform_matrix of {name} is not rigid (rotation is not orthonormal)", meta_path)
