"""Reading, writing and resizing the per-frame label files of the data contract (PNG label maps, npz probabilities);
the one home of label-PNG I/O for the dataset, the validators, plift-labels, plift-eval and the importers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from plift_ns.data.classes import ClassSet
from plift_ns.errors import PliftDataError


def read_label_png(path: Path, size: Optional[Tuple[int, int]] = None, grey_rgb: bool = False) -> np.ndarray:
    """A single-channel uint8/uint16 PNG as an (H, W) int64 array; ``size`` = expected (height, width).
    ``grey_rgb`` also accepts an RGB(A) image whose colour channels are all equal (as some dataset exports are)."""
    try:
        with Image.open(path) as im:
            array = np.asarray(im)
    except (OSError, ValueError) as err:
        raise PliftDataError(f"cannot read label image ({err})", path) from None
    if grey_rgb and array.ndim == 3 and array.shape[2] in (3, 4) and np.all(array[..., :3] == array[..., :1]):
        array = array[..., 0]
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
    """Write an integer label map as a PNG: ``dtype`` (uint8/uint16), or uint8 when it fits, else uint16. Values
    outside [0, 65535] are a :class:`PliftDataError` naming ``path``."""
    labels = np.asarray(labels)
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 65535:
        raise PliftDataError(f"label values out of the PNG range: [{labels.min()}, {labels.max()}]", path)
    if dtype is None:
        dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(dtype)).save(path)


def resize_labels(labels: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an integer label map to ``size`` = (width, height), as int64 (``labels`` itself
    when it already has that size)."""
    if (labels.shape[1], labels.shape[0]) == tuple(size):
        return labels
    im = Image.fromarray(labels.astype(np.int32), mode="I").resize(tuple(size), Image.Resampling.NEAREST)
    return np.asarray(im).astype(np.int64)
