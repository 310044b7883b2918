"""Exact analytic ray casting of a :class:`Room` with vectorised numpy (slab test per box primitive).

The label of a pixel is the label of the primitive first hit by the ray through the pixel centre; the colour is a
procedural albedo with view-independent Lambertian + ambient shading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from plift_ns.synthetic.cameras import Intrinsics
from plift_ns.synthetic.scene import PATTERNS, SHELL_FACES, Room, RoomArrays

#: Directional lights (direction towards the light, intensity) and ambient term.
LIGHTS = ((np.array([0.35, 0.55, 1.0]), 0.45), (np.array([-0.7, -0.3, 0.35]), 0.25), (np.array([0.2, -0.4, -1.0]), 0.12))
AMBIENT = 0.38

_EPS = 1e-9


@dataclass
class RenderedView:
    """One rendered frame: colour, z-depth (metres, 0 where nothing is hit) and exact panoptic ground truth."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres along the camera's -z axis
    semantics: np.ndarray  # (H, W) uint8 class id, void_id where nothing is hit
    instance: np.ndarray  # (H, W) uint16 global instance id, 0 for stuff / void


def _screen_rect(arr: RoomArrays, p: int, w2c: np.ndarray, intr: Intrinsics) -> Optional[Tuple[int, int, int, int]]:
    """Pixel rectangle (v0, v1, u0, u1) containing the projection of box ``p``; None if it is behind the camera."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    loc = signs * arr.halves[p]
    c, s = arr.cos[p], arr.sin[p]
    world = np.stack([c * loc[:, 0] - s * loc[:, 1], s * loc[:, 0] + c * loc[:, 1], loc[:, 2]], 1) + arr.centers[p]
    cam = world @ w2c[:3, :3].T + w2c[:3, 3]
    if np.all(cam[:, 2] >= 0.0):
        return None
    if np.any(cam[:, 2] > -1e-3):
        return 0, intr.h, 0, intr.w
    uv = intr.project(cam)
    u0 = int(np.clip(np.floor(uv[:, 0].min() - 0.5) - 1, 0, intr.w))
    u1 = int(np.clip(np.ceil(uv[:, 0].max() - 0.5) + 2, 0, intr.w))
    v0 = int(np.clip(np.floor(uv[:, 1].min() - 0.5) - 1, 0, intr.h))
    v1 = int(np.clip(np.ceil(uv[:, 1].max() - 0.5) + 2, 0, intr.h))
    if u1 <= u0 or v1 <= v0:
        return None
    return v0, v1, u0, u1


def _cast_boxes(
    arr: RoomArrays, c2w: np.ndarray, dirs: np.ndarray, intr: Intrinsics
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest entry hit of the pixel rays (H, W, 3) against all boxes: (t, box index or -1, entry axis), each (H, W).

    Boxes are processed one at a time over the pixel rectangle their projection covers (exact z-buffer of ray hits).
    """
    h, w = dirs.shape[:2]
    t_best = np.full((h, w), np.inf)
    idx = np.full((h, w), -1, dtype=np.int64)
    axis = np.zeros((h, w), dtype=np.int64)
    origin = c2w[:3, 3]
    w2c = np.linalg.inv(c2w)
    for p in range(len(arr.centers)):
        rect = _screen_rect(arr, p, w2c, intr)
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        d = dirs[v0:v1, u0:u1]
        c, s = arr.cos[p], arr.sin[p]
        o = origin - arr.centers[p]
        o_loc = (c * o[0] + s * o[1], -s * o[0] + c * o[1], o[2])
        d_loc = (c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2])
        near = []
        tnear = tfar = None
        for k in range(3):
            dk = np.where(np.abs(d_loc[k]) < _EPS, _EPS, d_loc[k])
            t1 = (-arr.halves[p, k] - o_loc[k]) / dk
            t2 = (arr.halves[p, k] - o_loc[k]) / dk
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            near.append(lo)
            tnear = lo if tnear is None else np.maximum(tnear, lo)
            tfar = hi if tfar is None else np.minimum(tfar, hi)
        better = (tfar >= tnear) & (tnear > 1e-6) & (tnear < t_best[v0:v1, u0:u1])
        if not better.any():
            continue
        ax = np.where(near[0] >= near[1], 0, 1)
        ax = np.where(near[2] > np.maximum(near[0], near[1]), 2, ax)
        t_best[v0:v1, u0:u1][better] = tnear[better]
        idx[v0:v1, u0:u1][better] = p
        axis[v0:v1, u0:u1][better] = ax[better]
    return t_best, idx, axis


def _cast_shell(arr: RoomArrays, origin: np.ndarray, dirs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Exit hit of rays with the room shell (camera inside): (t, shell face index 0..5)."""
    d = np.where(np.abs(dirs) < _EPS, _EPS, dirs)
    bound = np.where(d > 0, arr.bounds_max[None, :], arr.bounds_min[None, :])
    t_axes = (bound - origin[None, :]) / d
    axis = t_axes.argmin(-1)
    t = t_axes[np.arange(len(d)), axis]
    positive = d[np.arange(len(d)), axis] > 0
    face_of = {(a, s): k for k, (_, a, s) in enumerate(SHELL_FACES)}
    lut = np.array([[face_of[(a, -1)], face_of[(a, 1)]] for a in range(3)])
    return t, lut[axis, positive.astype(np.int64)]


def _pattern(arr: RoomArrays, prim: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Procedural pattern value in [0, 1] at local points ``q`` (N, 3) of primitives ``prim`` (N,)."""
    q = q + arr.phases[prim]
    scale = arr.scales[prim][:, None]
    axis = arr.axes[prim]
    kind = arr.patterns[prim]
    rows = np.arange(len(q))
    qa = q[rows, axis]
    qb = q[rows, (axis + 1) % 3]
    out = np.zeros(len(q))
    stripes = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * qa / scale[:, 0]))
    checker = np.mod(np.floor(q / scale).sum(-1), 2.0)
    qs = q / scale
    noise = 0.5 + (np.sin(1.3 * qs[:, 0] + 2.1 * qs[:, 1] + 0.7 * qs[:, 2])
                   + np.sin(-0.9 * qs[:, 0] + 1.7 * qs[:, 2] + 1.9 * qs[:, 1] + 1.0)
                   + np.sin(2.3 * qs[:, 2] - 1.1 * qs[:, 1] + 0.4 * qs[:, 0] + 2.0)) / 6.0
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (qa / scale[:, 0] + 0.6 * np.sin(3.0 * qb)))
    for name, value in (("stripes", stripes), ("checker", checker), ("noise", noise), ("grain", grain)):
        sel = kind == PATTERNS.index(name)
        out[sel] = value[sel]
    return out


def _shade(normals: np.ndarray) -> np.ndarray:
    """View-independent Lambertian + ambient shading factor for world normals (N, 3)."""
    s = np.full(len(normals), AMBIENT)
    for direction, intensity in LIGHTS:
        s += intensity * np.clip(normals @ (direction / np.linalg.norm(direction)), 0.0, None)
    return s


def render_view(room: Room, c2w: np.ndarray, intrinsics: Intrinsics) -> RenderedView:
    """Ray cast one view; ``c2w`` is a 4x4 camera-to-world matrix in the nerfstudio/OpenGL convention."""
    arr = room.arrays
    c2w = np.asarray(c2w, dtype=np.float64)
    h, w = intrinsics.h, intrinsics.w
    dirs_img = intrinsics.camera_rays() @ c2w[:3, :3].T  # unnormalised, camera z = -1: t equals z-depth
    origin = c2w[:3, 3]
    t_box, idx, axis = (a.reshape(-1) for a in _cast_boxes(arr, c2w, dirs_img, intrinsics))
    dirs = dirs_img.reshape(-1, 3)
    t_shell, face = _cast_shell(arr, origin, dirs)
    use_shell = t_shell <= t_box
    prim = np.where(use_shell, len(arr.centers) + face, idx)
    t = np.where(use_shell, t_shell, t_box)
    points = origin[None, :] + t[:, None] * dirs

    normals = np.zeros_like(points)
    local = points.copy()
    box_rows = np.nonzero(~use_shell)[0]
    if len(box_rows):
        b = idx[box_rows]
        c, s = arr.cos[b], arr.sin[b]
        d = points[box_rows] - arr.centers[b]
        local[box_rows] = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], 1)
        db = dirs[box_rows]
        dl = np.stack([c * db[:, 0] + s * db[:, 1], -s * db[:, 0] + c * db[:, 1], db[:, 2]], 1)
        rows, a = np.arange(len(box_rows)), axis[box_rows]
        n_loc = np.zeros((len(box_rows), 3))
        n_loc[rows, a] = -np.sign(dl[rows, a])
        normals[box_rows] = np.stack([c * n_loc[:, 0] - s * n_loc[:, 1], s * n_loc[:, 0] + c * n_loc[:, 1], n_loc[:, 2]], 1)
    shell_rows = np.nonzero(use_shell)[0]
    for k, (_, a, sign) in enumerate(SHELL_FACES):
        normals[shell_rows[face[shell_rows] == k], a] = -sign
    albedo = arr.colors[prim] * (1.0 - arr.contrasts[prim] * _pattern(arr, prim, local))[:, None]
    rgb = np.clip(albedo * _shade(normals)[:, None], 0.0, 1.0)
    sem = arr.class_ids[prim]
    inst = arr.instance_ids[prim]
    missed = ~np.isfinite(t)
    if missed.any():  # cannot happen inside the closed shell; kept for open scenes
        t[missed], rgb[missed], sem[missed], inst[missed] = 0.0, 0.0, room.class_set.void_id, 0
    return RenderedView(
        rgb=np.round(rgb * 255.0).astype(np.uint8).reshape(h, w, 3),
        depth=t.astype(np.float32).reshape(h, w),
        semantics=sem.astype(np.uint8).reshape(h, w),
        instance=inst.astype(np.uint16).reshape(h, w),
    )
