"""A scene box from ``ns-process-data``'s sparse COLMAP points (``sparse_pc.ply``) for captures without depth."""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from plift_ns.errors import PliftDataError

LOW_PERCENTILE = 1.0
"""Per axis, the box spans the [1, 99] percentile range of the points (SfM outliers fall outside) ..."""
MARGIN = 0.05
"""... plus the camera centres, grown by 5% of its size on every side (COLMAP's unit is arbitrary: no metric margin)."""
MIN_POINTS = 20


def read_ply_points(path: Path) -> np.ndarray:
    """x, y, z (N, 3) of an ASCII PLY vertex list as ``ns-process-data`` writes it (``x y z red green blue``)."""
    try:
        with open(path, "rb") as f:
            header: List[str] = []
            while True:
                line = f.readline()
                if not line:
                    raise ValueError("no end_header")
                text = line.decode("ascii", errors="replace").strip()
                header.append(text)
                if text == "end_header":
                    break
            if "format ascii 1.0" not in header:
                raise ValueError("only ASCII PLY files are read")
            count = next(int(h.split()[2]) for h in header if h.startswith("element vertex"))
            props = [h.split()[-1] for h in header if h.startswith("property")]
            cols = [props.index(a) for a in ("x", "y", "z")]
            data = np.loadtxt(f, dtype=np.float64, max_rows=count, ndmin=2) if count else np.zeros((0, len(props)))
    except (OSError, ValueError, StopIteration) as err:
        raise PliftDataError(f"cannot read the sparse point cloud ({err})", path) from None
    return data[:, cols] if len(data) else np.zeros((0, 3))


def box_from_points(points: np.ndarray, cameras: np.ndarray) -> List[List[float]]:
    """``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` around the robust extent of ``points`` and all ``cameras``."""
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) < MIN_POINTS:
        raise PliftDataError(f"only {len(points)} sparse points: too few for a scene box")
    lo = np.minimum(np.percentile(points, LOW_PERCENTILE, axis=0), cameras.min(0))
    hi = np.maximum(np.percentile(points, 100.0 - LOW_PERCENTILE, axis=0), cameras.max(0))
    margin = MARGIN * (hi - lo).max()
    return [[float(v) for v in lo - margin], [float(v) for v in hi + margin]]
