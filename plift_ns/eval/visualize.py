"""Colour-coding of semantic / instance maps and side-by-side panels for qualitative evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from plift_ns.colors import dim_colors, instance_colors
from plift_ns.data.classes import ClassSet
from plift_ns.errors import PliftDataError


def _class_table_uint8(class_set: ClassSet) -> np.ndarray:
    """(C + 1, 3) uint8 colours; the last row (void and any unknown id) is black."""
    table = np.zeros((class_set.num_classes + 1, 3), dtype=np.uint8)
    table[:-1] = np.asarray(class_set.colors, dtype=np.uint8)
    return table


def _class_index(sem: Any, class_set: ClassSet) -> np.ndarray:
    """Class ids with void / unknown ids mapped to C (the black row)."""
    sem = np.asarray(sem).astype(np.int64)
    c = class_set.num_classes
    return np.where((sem >= 0) & (sem < c), sem, c)


def colorize_semantics(sem: Any, class_set: ClassSet) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 in the class set's colours; void (and unknown ids) black."""
    return _class_table_uint8(class_set)[_class_index(sem, class_set)]


def colorize_instances(sem: Any, inst: Any, class_set: ClassSet) -> np.ndarray:
    """Instance view (H, W, 3) uint8: each thing (class, instance id) pair gets a stable hashed colour (the same id has
    the same colour in every frame); stuff pixels, and thing pixels with instance id 0, show their class colour
    darkened and desaturated; void (and unknown ids) black."""
    cls = _class_index(sem, class_set)
    inst = np.asarray(inst).astype(np.int64)
    if inst.shape != cls.shape:
        raise PliftDataError(f"instance map shape {inst.shape} != semantic map shape {cls.shape}")
    c = class_set.num_classes
    dim_table = _float_to_uint8(dim_colors(class_set.color_table()))
    dim_table[c] = 0
    out = dim_table[cls]
    is_thing = np.append(class_set.thing_mask(), False)[cls] & (inst != 0)
    if is_thing.any():
        pairs = np.stack([cls[is_thing], inst[is_thing]], axis=1)
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        out[is_thing] = _float_to_uint8(instance_colors(uniq[:, 0], uniq[:, 1]))[inv.reshape(-1)]
    return out


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(values) * 255.0), 0, 255).astype(np.uint8)


def _to_rgb_uint8(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise PliftDataError(f"panel must be (H, W, 3) or (H, W), got shape {arr.shape}")
    return arr[..., :3]


def side_by_side(
    panels: Sequence[Tuple[str, Any]],
    *,
    title_height: int = 14,
    gap: int = 4,
    background: Tuple[int, int, int] = (24, 24, 24),
    text_color: Tuple[int, int, int] = (235, 235, 235),
) -> np.ndarray:
    """Concatenate ``(title, image)`` panels left to right with a small text title above each; (H', W', 3) uint8.

    Images may be uint8 or float in [0, 1], RGB or single channel; shorter panels are padded at the bottom.
    """
    if not panels:
        raise PliftDataError("side_by_side needs at least one panel")
    images: List[np.ndarray] = [_to_rgb_uint8(img) for _, img in panels]
    height = max(img.shape[0] for img in images)
    width = sum(img.shape[1] for img in images) + gap * (len(images) - 1)
    canvas = np.empty((height + title_height, width, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    x = 0
    for img in images:
        canvas[title_height : title_height + img.shape[0], x : x + img.shape[1]] = img
        x += img.shape[1] + gap
    if title_height > 0:
        pil = Image.fromarray(canvas)
        draw = ImageDraw.Draw(pil)
        x = 0
        for (title, _), img in zip(panels, images):
            draw.text((x + 2, 1), str(title), fill=tuple(text_color))
            x += img.shape[1] + gap
        canvas = np.asarray(pil).copy()
    return canvas


def write_png(path: Union[str, Path], array: Any) -> Path:
    """Write an (H, W, 3) / (H, W, 4) uint8 image, an (H, W) uint8 or uint16 map, or a float image in [0, 1] as PNG
    (parent folders are created)."""
    path = Path(path)
    arr = np.asarray(array)
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2 and arr.dtype not in (np.uint8, np.uint16):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise PliftDataError("label values outside 0..65535 cannot be written as PNG", path)
        arr = arr.astype(np.uint16 if arr.size and arr.max() > 255 else np.uint8)
    elif arr.ndim == 3 and arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise PliftDataError(f"cannot write an array of shape {arr.shape} as PNG", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path
