"""Similarity alignment of estimated camera centres to reference ones (Umeyama 1991) and the trajectory error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * rotation @ x + translation``."""

    scale: float
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * points @ self.rotation.T + self.translation

    def apply_pose(self, c2w: np.ndarray) -> np.ndarray:
        """A 4x4 camera-to-world pose moved by the similarity (rotation composed, centre mapped, no scaling of axes)."""
        out = np.eye(4)
        out[:3, :3] = self.rotation @ c2w[:3, :3]
        out[:3, 3] = self.apply(c2w[None, :3, 3])[0]
        return out

    def inverse(self) -> "Similarity":
        rot = self.rotation.T
        return Similarity(1.0 / self.scale, rot, -(rot @ self.translation) / self.scale)


def umeyama(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The least-squares similarity mapping ``source`` (N, 3) onto ``target`` (N, 3), N >= 3 points not on a line."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3 or len(source) < 3:
        raise ValueError(f"need two (N, 3) arrays with N >= 3, got {source.shape} and {target.shape}")
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    cov = xt.T @ xs / len(source)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    var_s = (xs ** 2).sum() / len(source)
    scale = float(np.trace(np.diag(d) @ sign) / var_s)
    return Similarity(scale, rotation, mu_t - scale * rotation @ mu_s)


@dataclass(frozen=True)
class TrajectoryError:
    """Absolute trajectory error after alignment, in the reference's units, and the rotation error in degrees."""

    rmse: float
    median: float
    max: float
    rotation_deg_median: float
    rotation_deg_max: float


def trajectory_error(estimated: np.ndarray, reference: np.ndarray) -> tuple:
    """Align estimated 4x4 camera-to-world poses (N, 4, 4) onto reference ones by their centres; returns the
    :class:`Similarity` and the :class:`TrajectoryError`. Both must use the same camera-axis convention."""
    sim = umeyama(estimated[:, :3, 3], reference[:, :3, 3])
    moved = np.stack([sim.apply_pose(p) for p in estimated])
    dist = np.linalg.norm(moved[:, :3, 3] - reference[:, :3, 3], axis=1)
    rel = np.einsum("nji,njk->nik", moved[:, :3, :3], reference[:, :3, :3])
    angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)))
    err = TrajectoryError(float(np.sqrt((dist ** 2).mean())), float(np.median(dist)), float(dist.max()),
                          float(np.median(angle)), float(angle.max()))
    return sim, err
