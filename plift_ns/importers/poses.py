"""Camera conventions of the importers (README, "Real scenes").

* Poses. Source layouts store camera-to-world matrices in the OpenCV convention (x right, y down, looking along +z);
  the data contract uses nerfstudio/OpenGL (x right, y up, looking along -z): ``c2w_gl = c2w_cv @ diag(1, -1, -1, 1)``.
  World coordinates are kept as they are (metres); the dataparser centres and scales the scene box into [-1, 1]^3.
* Pixel centres. OpenCV-style intrinsics (ScanNet, Semantic-NeRF, the official Panoptic Lifting release) put the centre
  of pixel ``(i, j)`` at ``(i, j)``; nerfstudio casts rays through ``(i + 0.5, j + 0.5)``. The importers therefore write
  ``cx + 0.5`` and ``cy + 0.5``, so a 3D point lands on the same pixel through the original and the imported camera.
  Resizing by ``s`` then scales ``fx, fy, cx, cy`` by ``s`` (exact in the +0.5 convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from plift_ns.errors import PliftDataError
from plift_ns.importers.layout import frame_file

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplying a camera-to-world matrix by this flips the camera's y and z axes (OpenCV <-> OpenGL)."""
PIXEL_CENTER_SHIFT = 0.5
"""Added to an OpenCV principal point to get nerfstudio's (pixel centres at +0.5)."""


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


def _read_numbers(path: Path, missing: str) -> List[float]:
    """The whitespace-separated numbers of a text file (NaN/inf as they are)."""
    if not path.is_file():
        raise PliftDataError(missing, path)
    try:
        return [float(v) for v in path.read_text().split()]
    except ValueError as err:
        raise PliftDataError(f"not a matrix of numbers ({err})", path) from None


def read_matrix(path: Path, shape: Tuple[int, int] = (4, 4)) -> np.ndarray:
    """Whitespace-separated numbers of a text matrix (e.g. a ScanNet pose); NaN/inf are returned as they are."""
    values = _read_numbers(path, "file not found")
    if len(values) != shape[0] * shape[1]:
        raise PliftDataError(f"expected {shape[0]}x{shape[1]} numbers, found {len(values)}", path)
    return np.asarray(values, dtype=np.float64).reshape(shape)


def read_intrinsic_matrix(path: Path) -> np.ndarray:
    """A 3x3 camera matrix from a 3x3 or 4x4 text file (ScanNet ``intrinsic_color.txt``)."""
    values = _read_numbers(path, "intrinsics file not found")
    if len(values) not in (9, 16):
        raise PliftDataError(f"expected a 3x3 or 4x4 matrix, found {len(values)} numbers", path)
    n = 3 if len(values) == 9 else 4
    k = np.asarray(values, dtype=np.float64).reshape(n, n)[:3, :3]
    if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise PliftDataError("intrinsics must be finite with positive focal lengths", path)
    return k


def read_opencv_pose(pose_dir: Path, stem: str) -> Optional[np.ndarray]:
    """OpenGL camera-to-world of a frame from its OpenCV 4x4 ``pose/<stem>.txt``; None for an invalid (inf/NaN) pose,
    which ScanNet uses to mark frames without tracking."""
    pose_path = frame_file(pose_dir, stem, (".txt",), "pose")
    c2w_cv = read_matrix(pose_path)
    if not np.all(np.isfinite(c2w_cv)):
        return None
    return opencv_to_opengl(rigid_pose(c2w_cv, pose_path))
