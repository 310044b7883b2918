"""The scene box of an imported scene (README, "Real scenes").

From depth when the layout has it: every frame's depth is back-projected (subsampled), the box spans the 0.5th-99.5th
percentiles of those points plus the camera centres, grown by 5% of its size (at least 0.1 m) on every side. Without
depth: the box around the camera centres and their view frusta cut at ``max_depth`` metres.
"""

from __future__ import annotations

import math
from typing import List

import numpy as np

from plift_ns.errors import PliftDataError
from plift_ns.importers.poses import PinholeIntrinsics


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
