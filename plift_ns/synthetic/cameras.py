"""Pinhole intrinsics, look-at poses (nerfstudio/OpenGL convention) and an in-room camera loop."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from plift_ns.synthetic.scene import Room


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera: focal lengths and principal point in pixels, image size ``w`` x ``h``."""

    fl_x: float
    fl_y: float
    cx: float
    cy: float
    w: int
    h: int

    @classmethod
    def from_fov(cls, w: int, h: int, fov_x_deg: float) -> "Intrinsics":
        f = (w / 2.0) / math.tan(math.radians(fov_x_deg) / 2.0)
        return cls(f, f, w / 2.0, h / 2.0, int(w), int(h))

    def to_json(self) -> Dict[str, float]:
        return {"fl_x": self.fl_x, "fl_y": self.fl_y, "cx": self.cx, "cy": self.cy, "w": self.w, "h": self.h}

    def camera_rays(self) -> np.ndarray:
        """Per-pixel ray directions (H, W, 3) in the camera frame with z = -1 (so ray parameter t = z-depth)."""
        u, v = np.meshgrid(np.arange(self.w, dtype=np.float64), np.arange(self.h, dtype=np.float64))
        x = (u + 0.5 - self.cx) / self.fl_x
        y = -(v + 0.5 - self.cy) / self.fl_y
        return np.stack([x, y, -np.ones_like(x)], axis=-1)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) (continuous, pixel centres at +0.5) of camera-frame points (N, 3) with z < 0."""
        z = -points_cam[:, 2]
        u = points_cam[:, 0] / z * self.fl_x + self.cx
        v = -points_cam[:, 1] / z * self.fl_y + self.cy
        return np.stack([u, v], axis=1)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """Camera-to-world 4x4 (x right, y up, looking along -z) at ``eye`` looking at ``target``."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, cam_up, -forward, eye
    return c2w


def make_trajectory(room: Room, num_views: int, rng: np.random.Generator, clearance: float = 0.3) -> List[np.ndarray]:
    """Camera loop inside ``room``: eyes on a jittered ellipse at heights 1.0-1.8 m, ordered along the loop.

    About 60% of the views look at jittered points near the room centre, the rest at objects (with the walls behind
    them). Eyes inside furniture (inflated by ``clearance``) are re-drawn.
    """
    center = room.center
    half = (np.asarray(room.bounds_max) - np.asarray(room.bounds_min)) / 2.0
    anchors = np.asarray(room.anchors, dtype=np.float64)
    phase_h, phase_r = rng.uniform(0, 2 * math.pi, size=2)
    poses: List[np.ndarray] = []
    for i in range(num_views):
        theta0 = 2 * math.pi * i / num_views
        for attempt in range(200):
            theta = theta0 + rng.normal(0.0, 0.04 + 0.01 * attempt)
            radius = 0.72 + 0.06 * math.sin(3 * theta + phase_r) + rng.normal(0.0, 0.02) - 0.004 * attempt
            z = 1.4 + 0.35 * math.sin(2 * theta + phase_h) + rng.normal(0.0, 0.05)
            z = float(np.clip(z + (0.2 * rng.uniform(-1, 1) if attempt else 0.0), 1.0, 1.8))
            eye = np.array([center[0] + half[0] * radius * math.cos(theta),
                            center[1] + half[1] * radius * math.sin(theta), z])
            if not room.contains_point(eye, clearance):
                break
        else:  # pragma: no cover - the layout always leaves free space on the loop
            raise RuntimeError(f"no free camera position found for view {i}")
        target = None
        if rng.uniform() > 0.6 and len(anchors):
            to_center = center[:2] - eye[:2]
            for _ in range(20):
                cand = anchors[rng.integers(len(anchors))] + rng.normal(0.0, 0.15, size=3)
                d = cand - eye
                if np.linalg.norm(d) > 1.3 and np.dot(d[:2], to_center) > 0:
                    target = cand
                    break
        if target is None:
            target = np.array([center[0] + rng.uniform(-0.9, 0.9), center[1] + rng.uniform(-0.9, 0.9),
                               rng.uniform(0.3, 1.0)])
        poses.append(look_at(eye, target))
    return poses
