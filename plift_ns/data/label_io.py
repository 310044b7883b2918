"""Reading and writing the per-frame label files of the data contract (PNG label maps, npz probabilities)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from plift_ns.data.classes import ClassSet
from plift_ns.errors import PliftDataError


def read_label_png(path: Path, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """A single-channel uint8/uint16 PNG as an (H, W) integer array; ``size`` = expected (height, width)."""
    try:
        with Image.open(path) as im:
            array = np.asarray(im)
    except (OSError, ValueError) as err:
        raise PliftDataError(f"cannot read label image ({err})", path) from None
    if array.ndim != 2:
        raise PliftDataError(f"label image must have one channel, got shape {array.shape}", path)
    if size is not None and array.shape != tuple(size):
        raise PliftDataError(f"label size {array.shape} (H, W) differs from its image {tuple(size)}", path)
    return array.astype(np.int64)


def read_semantics(path: Path, class_set: ClassSet, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Class ids (H, W) int64 with the void id mapped to -1; any other id outside the class set is an error."""
    sem = read_label_png(path, size)
    void = sem == class_set.void_id
    bad = (~void) & ((sem < 0) | (sem >= class_set.num_classes))
    if bad.any():
        value = int(sem[bad][0])
        raise PliftDataError(
            f"class id {value} is outside the class set '{class_set.name}' (ids 0..{class_set.num_classes - 1}, "
            f"void {class_set.void_id})",
            path,
        )
    sem[void] = -1
    return sem


def thing_instances(
    semantics: np.ndarray, instance: np.ndarray, class_set: ClassSet
) -> Tuple[np.ndarray, int]:
    """Instance ids kept only on thing pixels (stuff and void pixels get 0, as the data contract says), and how many
    pixels carried an id that was dropped. ``semantics`` uses -1 for void."""
    if instance.shape != semantics.shape:
        return instance, 0
    is_thing = np.asarray(class_set.isthing, dtype=bool)
    keep = (semantics >= 0) & is_thing[np.clip(semantics, 0, None)]
    dropped = int(np.count_nonzero((instance != 0) & ~keep))
    if dropped:
        instance = np.where(keep, instance, 0)
    return instance, dropped


def load_probability_npz(path: Path, dtype: type = np.float16) -> Tuple[np.ndarray, np.ndarray]:
    """``probability`` and ``confidence`` arrays of an npz (no pickle), unchecked beyond their presence."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "probability" not in npz.files or "confidence" not in npz.files:
                raise PliftDataError(f"npz must hold 'probability' and 'confidence', has {npz.files}", path)
            return npz["probability"].astype(dtype), npz["confidence"].astype(dtype)
    except (OSError, ValueError) as err:
        raise PliftDataError(f"cannot read probabilities ({err})", path) from None


def read_probabilities(path: Path, num_classes: int, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """``probability`` (H, W, C) and ``confidence`` (H, W) as float16, checked against the image and class set."""
    prob, conf = load_probability_npz(path)
    if prob.ndim != 3 or prob.shape[:2] != tuple(size):
        raise PliftDataError(f"probability shape {prob.shape} does not match the image (H, W) = {tuple(size)}", path)
    if prob.shape[2] != num_classes:
        raise PliftDataError(
            f"probability has {prob.shape[2]} class channels but the class set has {num_classes} classes", path
        )
    if conf.shape != tuple(size):
        raise PliftDataError(f"confidence shape {conf.shape} does not match the image (H, W) = {tuple(size)}", path)
    if not (np.all(np.isfinite(prob)) and np.all(np.isfinite(conf))):
        raise PliftDataError("probability/confidence contain NaN or inf", path)
    return prob, conf


def write_label_png(path: Path, labels: np.ndarray, dtype: Optional[type] = None) -> None:
    """Write an integer label map as a PNG: ``dtype`` (uint8/uint16), or uint8 when it fits, else uint16."""
    labels = np.asarray(labels)
    if dtype is None:
        dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= 65536:
        raise ValueError(f"label values out of range for a PNG: [{labels.min()}, {labels.max()}]")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(dtype)).save(path)
