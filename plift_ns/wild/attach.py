"""Attach labels that already exist for the same photos (e.g. a generated room's simulated machine labels and
ground truth) to a ``plift-wild`` scene, matched by photo file name and resized to the frames' images. A testing and
benchmarking aid: it lets a COLMAP-posed scene and a true-pose scene train on identical labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from PIL import Image

from plift_ns.data.label_io import load_probability_npz, read_label_png, resize_labels, write_label_png
from plift_ns.errors import PliftDataError
from plift_ns.importers.images import resize_probabilities
from plift_ns.io.atomic import atomic_write_json

PNG_KEYS = ("semantics_path", "instance_path", "gt_semantics_path", "gt_instance_path")
NPZ_KEYS = ("probabilities_path",)
SPLIT_KEYS = ("train_filenames", "test_filenames", "val_filenames")


def attach_labels(scene: Path, source: Path, frame_names: Dict[str, str]) -> Dict[str, Any]:
    """Copy the label files of ``source``'s frames onto the frames of ``scene`` whose photo has the same file name
    (``frame_names``: photo -> frame file); also its class set and train/test split. Returns the new metadata."""
    src_path = source / "transforms.json" if source.is_dir() else source
    if not src_path.exists():
        raise PliftDataError("--labels-from: transforms.json not found", src_path)
    src_meta = json.loads(src_path.read_text())
    by_name = {Path(f["file_path"]).name: f for f in src_meta.get("frames", [])}
    frame_of_photo = {Path(photo).name: frame for photo, frame in frame_names.items()}
    photo_of_frame = {frame: photo for photo, frame in frame_of_photo.items()}
    meta_path = scene / "transforms.json"
    meta = json.loads(meta_path.read_text())
    for frame in meta["frames"]:
        photo = photo_of_frame.get(Path(frame["file_path"]).name)
        src = by_name.get(photo or "")
        if src is None:
            raise PliftDataError(f"--labels-from has no frame for photo {photo} (frame {frame['file_path']})", src_path)
        with Image.open(scene / frame["file_path"]) as im:
            size = im.size
        stem = Path(frame["file_path"]).stem
        for key in PNG_KEYS + NPZ_KEYS:
            if key not in src:
                continue
            rel = f"{Path(src[key]).parent.as_posix()}/{stem}{Path(src[key]).suffix}"
            _copy_resized(src_path.parent / src[key], scene / rel, size, key in NPZ_KEYS)
            frame[key] = rel
    meta["panoptic_classes"] = src_meta["panoptic_classes"]
    for key in SPLIT_KEYS:
        if key in src_meta:
            meta[key] = _mapped_split(src_meta[key], frame_of_photo, meta)
    if "test_filenames" in meta and not meta["test_filenames"]:
        del meta["test_filenames"]  # no test photo was registered: fall back to the dataparser's every n-th frame
        meta.pop("train_filenames", None)
    atomic_write_json(meta_path, meta, indent=2)
    return meta


def _mapped_split(names: List[str], frame_of_photo: Dict[str, str], meta: Dict[str, Any]) -> List[str]:
    """Source split names -> the scene's registered frame paths (photos COLMAP did not place drop out)."""
    path_of = {Path(f["file_path"]).name: f["file_path"] for f in meta["frames"]}
    out: List[str] = []
    for name in names:
        frame = frame_of_photo.get(Path(name).name)
        if frame is not None and frame in path_of:
            out.append(path_of[frame])
    return out


def _copy_resized(src: Path, dst: Path, size: tuple, is_npz: bool) -> None:
    """One label file, resized to ``size`` (width, height): nearest for label maps, bilinear for probabilities."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if is_npz:
        prob, conf = load_probability_npz(src, np.float32)
        prob, conf = resize_probabilities(prob, conf, size)
        np.savez_compressed(dst, probability=prob.astype(np.float16), confidence=conf.astype(np.float16))
        return
    labels = read_label_png(src)
    with Image.open(src) as im:
        dtype: Optional[type] = np.uint16 if im.mode.startswith("I") else np.uint8
    write_label_png(dst, resize_labels(labels, size), dtype)
