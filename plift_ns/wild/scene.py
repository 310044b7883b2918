"""Turn ``ns-process-data``'s output into a plift-ns scene: frames read from one of its downscale folders
(``images_2`` ...), intrinsics scaled to match, a ``scene_box`` from the sparse points, and a record of which photo
became which frame. Its camera model, distortion, ``applied_transform`` and ``ply_file_path`` are kept as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import numpy as np
from PIL import Image

from plift_ns.errors import PliftDataError
from plift_ns.io.atomic import atomic_write_json
from plift_ns.wild.scene_box import box_from_points, read_ply_points

INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy")


def image_folder(downscale: int) -> str:
    """``images`` or ns-process-data's ``images_<downscale>`` folder."""
    return "images" if downscale == 1 else f"images_{downscale}"


def use_downscale(meta: Dict[str, Any], scene: Path, downscale: int) -> Dict[str, Any]:
    """Point every frame at ``images_<downscale>/`` and scale the intrinsics by the real size ratio (COLMAP's pixel
    centres sit at +0.5, so scaling the principal point is exact). Distortion coefficients are unitless: unchanged."""
    if downscale == 1:
        return meta
    folder = image_folder(downscale)
    frames = meta["frames"]
    first = scene / folder / Path(frames[0]["file_path"]).name
    if not first.exists():
        raise PliftDataError(
            f"no {folder}/ from ns-process-data (it writes images_2, _4, _8 with --num-downscales 3): choose "
            "--downscale 1, 2, 4 or 8", first.parent,
        )
    with Image.open(first) as im:
        w, h = im.size
    sx, sy = w / float(meta["w"]), h / float(meta["h"])
    for frame in frames:
        frame["file_path"] = f"{folder}/{Path(frame['file_path']).name}"
        for key, s in (("fl_x", sx), ("cx", sx), ("fl_y", sy), ("cy", sy)):
            if key in frame:  # per-frame cameras (several COLMAP cameras)
                frame[key] = float(frame[key]) * s
        if "w" in frame:
            frame["w"], frame["h"] = w, h
    for key, s in (("fl_x", sx), ("cx", sx), ("fl_y", sy), ("cy", sy)):
        if key in meta:
            meta[key] = float(meta[key]) * s
    meta["w"], meta["h"] = w, h
    return meta


def add_scene_box(meta: Dict[str, Any], scene: Path) -> str:
    """``scene_box`` from ``sparse_pc.ply`` (and the cameras); without usable points the dataparser's box around the
    cameras stays in use. Returns where the box came from."""
    ply = scene / str(meta.get("ply_file_path", "sparse_pc.ply"))
    cameras = np.array([np.asarray(f["transform_matrix"], dtype=np.float64)[:3, 3] for f in meta["frames"]])
    if not ply.exists():
        return "cameras (no sparse_pc.ply)"
    try:
        meta["scene_box"] = box_from_points(read_ply_points(ply), cameras)
    except PliftDataError:
        return "cameras (too few sparse points)"
    return "sparse points"


def finish_scene(scene: Path, downscale: int, record: Dict[str, Any]) -> Dict[str, Any]:
    """Rewrite ``scene/transforms.json`` in place (atomically) into a plift-ns scene; returns the new metadata."""
    path = scene / "transforms.json"
    meta = json.loads(path.read_text())
    meta = use_downscale(meta, scene, downscale)
    record = dict(record, scene_box_from=add_scene_box(meta, scene), downscale=downscale)
    meta["plift_wild"] = record
    atomic_write_json(path, meta, indent=2)
    return meta
