"""Reading and resampling a source frame's images: RGB, masks, depth and class probabilities (label PNGs:
:mod:`plift_ns.data.label_io`)."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image

from plift_ns.data.label_io import read_label_png
from plift_ns.errors import PliftDataError
from plift_ns.io.images import read_rgb


def read_image_size(path: Path) -> Tuple[int, int]:
    """(width, height) of an image (decoded, so a broken file fails here)."""
    rgb = read_rgb(path)
    return rgb.shape[1], rgb.shape[0]


def read_png(path: Path) -> np.ndarray:
    """A single-channel PNG (labels, depth) as an (H, W) int64 array; grey RGB(A) is accepted."""
    return read_label_png(path, grey_rgb=True)


def read_depth_mm(path: Path) -> np.ndarray:
    """A uint16 depth PNG in millimetres as (H, W) float32 metres (0 = invalid)."""
    return read_png(path).astype(np.float32) / 1000.0


def read_mask(path: Path) -> np.ndarray:
    """A (possibly JPEG-compressed) mask image as an (H, W) int64 array of 0/1 (grey level > 127)."""
    try:
        with Image.open(path) as im:
            return (np.asarray(im.convert("L")) > 127).astype(np.int64)
    except (OSError, ValueError) as err:
        raise PliftDataError(f"cannot read mask image ({err})", path) from None


def output_size(w: int, h: int, downscale: int) -> Tuple[int, int]:
    """(width, height) after an integer downscale factor (rounded; intrinsics are scaled by the exact ratio)."""
    if downscale < 1:
        raise PliftDataError(f"--downscale must be a positive integer (got {downscale})")
    return max(1, int(round(w / downscale))), max(1, int(round(h / downscale)))


def resize_rgb(rgb: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Area-resample (box filter) an (H, W, 3) uint8 image to ``size`` = (width, height); bicubic when enlarging."""
    if (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb
    enlarge = size[0] > rgb.shape[1] or size[1] > rgb.shape[0]
    method = Image.Resampling.BICUBIC if enlarge else Image.Resampling.BOX
    return np.asarray(Image.fromarray(rgb).resize(size, method))


def resize_depth(depth: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a depth map (no mixing across depth edges)."""
    if (depth.shape[1], depth.shape[0]) == tuple(size):
        return depth
    im = Image.fromarray(depth.astype(np.float32), mode="F").resize(size, Image.Resampling.NEAREST)
    return np.asarray(im)


def resize_probabilities(prob: np.ndarray, conf: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Bilinear resize (as the official code) of (H, W, C) probabilities and (H, W) confidences; rows renormalised."""
    if (prob.shape[1], prob.shape[0]) == tuple(size):
        return prob, conf
    import torch

    stack = np.concatenate([prob, conf[..., None]], axis=-1).astype(np.float32)
    t = torch.from_numpy(stack).permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(t, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    out = out[0].permute(1, 2, 0).numpy()
    p = np.clip(out[..., :-1], 0.0, None)
    p /= np.maximum(p.sum(-1, keepdims=True), 1e-8)
    return p, np.clip(out[..., -1], 0.0, 1.0)
