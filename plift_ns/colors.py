"""Stable colours for panoptic maps: one per class (from the class set) and one per (class, instance id) pair."""

from __future__ import annotations

import numpy as np

_GOLDEN = 0.618033988749895


def id_colors(ids: np.ndarray) -> np.ndarray:
    """A stable, well-spread RGB colour in [0, 1] for each non-negative integer id (the same id → the same colour
    in every frame and every run). Returns ``ids.shape + (3,)`` float32."""
    ids = np.asarray(ids, dtype=np.int64)
    hue = (ids * _GOLDEN) % 1.0
    sat = 0.55 + 0.4 * ((ids * 7) % 5) / 4.0
    val = 0.65 + 0.35 * ((ids * 3) % 4) / 3.0
    return _hsv_to_rgb(hue, sat, val).astype(np.float32)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [np.stack(c, axis=-1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], axis=0
    )
    return np.take_along_axis(table, i[None, ..., None].repeat(3, axis=-1), axis=0)[0]


def panoptic_key(semantics: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """One integer per (class, instance id) pair (instance ids are uint16 in the data contract)."""
    return np.asarray(semantics, dtype=np.int64) * 65536 + np.asarray(instance, dtype=np.int64)


def instance_colors(semantics: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Colour of each (class, instance id) pair: stable across frames, so one 3D instance keeps its colour."""
    return id_colors(panoptic_key(semantics, instance))


def dim_colors(colors: np.ndarray) -> np.ndarray:
    """Darkened, desaturated versions of float colours in [0, 1] (stuff in instance views)."""
    colors = np.asarray(colors, dtype=np.float32)
    gray = colors.mean(axis=-1, keepdims=True)
    return 0.45 * (0.4 * colors + 0.6 * gray)
