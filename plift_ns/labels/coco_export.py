"""Export written labels as COCO panoptic (PNG with RGB-encoded segment ids + one JSON) for interchange.

Layout: ``<dir>/panoptic/<stem>.png`` and ``<dir>/panoptic.json``. Segment id = R + 256 G + 256² B, 0 = void.
Category ids are the class set's ids + 1 (so 0 never names a class); stuff classes give one segment per class, thing
instances one segment each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from plift_ns.data.classes import ClassSet
from plift_ns.data.label_io import read_label_png, read_semantics
from plift_ns.labels.files import FrameFiles, atomic_write_bytes, atomic_write_json, png_bytes


def encode_ids(segment_ids: np.ndarray) -> np.ndarray:
    """(H, W) int ids → (H, W, 3) uint8 RGB with id = R + 256 G + 256² B."""
    ids = segment_ids.astype(np.int64)
    return np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)


def decode_ids(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def panoptic_segments(semantics: np.ndarray, instance: np.ndarray, class_set: ClassSet) -> tuple:
    """(segment id map (H, W), segments_info) from class ids (void = -1) and instance ids."""
    seg = np.zeros(semantics.shape, dtype=np.int64)
    infos: List[Dict[str, Any]] = []
    valid = semantics >= 0
    keys = np.unique(np.stack([semantics[valid], np.where(np.asarray(class_set.isthing)[semantics[valid]],
                                                           instance[valid], 0)], axis=1), axis=0)
    for cls, inst in keys:
        mask = valid & (semantics == cls) & ((instance == inst) if class_set.isthing[cls] else True)
        ys, xs = np.nonzero(mask)
        seg_id = len(infos) + 1
        seg[mask] = seg_id
        infos.append({
            "id": seg_id,
            "category_id": int(cls) + 1,
            "iscrowd": 0,
            "area": int(mask.sum()),
            "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
        })
    return seg, infos


def export_coco_panoptic(out_dir: Path, frames: Sequence[FrameFiles], class_set: ClassSet) -> Path:
    """Write the COCO panoptic export of ``frames``' label files; returns the JSON path."""
    out_dir = Path(out_dir)
    images, annotations = [], []
    for image_id, files in enumerate(frames, start=1):
        sem = read_semantics(files.absolute["semantics_path"], class_set)
        inst = read_label_png(files.absolute["instance_path"], sem.shape)
        seg, infos = panoptic_segments(sem, inst, class_set)
        name = f"{files.stem}.png"
        atomic_write_bytes(out_dir / "panoptic" / name, png_bytes(encode_ids(seg)))
        images.append({"id": image_id, "file_name": files.image.name, "height": int(sem.shape[0]),
                       "width": int(sem.shape[1])})
        annotations.append({"image_id": image_id, "file_name": name, "segments_info": infos})
    categories = [
        {"id": i + 1, "name": n, "isthing": int(t), "color": list(c)}
        for i, (n, t, c) in enumerate(zip(class_set.names, class_set.isthing, class_set.colors))
    ]
    path = out_dir / "panoptic.json"
    atomic_write_json(path, {"info": {"description": f"plift-labels ({class_set.name})"}, "images": images,
                             "annotations": annotations, "categories": categories})
    return path
