"""Test-time augmentations (supp. A.1) as (forward image transform, inverse mask transform) pairs.

Names (case-insensitive), combined with ``+`` and applied left to right, e.g. ``hflip+scale0.75``:

==========================  ==================================================================
``original``                the image as is (always run first)
``hflip`` / ``flip``        horizontal flip (inverse: flip the masks back)
``scale<f>``                rescale by f, e.g. ``scale0.75`` (inverse: resize the masks back)
``contrast[<f>]``           contrast factor f (default 1.3)
``brightness[<f>]``         brightness factor f (default 1.2)
``brightness_contrast``     brightness 1.15 and contrast 0.85
``gamma[<g>]``              gamma g (default 0.8)
``rgb_shift`` / ``colour_shift`` / ``color_shift``   add (+12, -8, +6) to (R, G, B)
``median_blur`` / ``blur``  3x3 median filter
``sharpen[<f>]``            sharpness factor f (default 2.0)
==========================  ==================================================================

The paper samples random parameters; these are fixed so that labels are reproducible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from plift_ns.errors import PliftDataError
from plift_ns.labels.protocol import QueryPrediction, QuerySegmenter

ImageFn = Callable[[Tensor], Tensor]
MaskFn = Callable[[Tensor, Tuple[int, int]], Tensor]
Part = Tuple[ImageFn, bool]
"""A parsed name part: its image transform and whether it flips the image horizontally."""

DEFAULT_TTA: Tuple[str, ...] = (
    "hflip",
    "scale0.75",
    "scale1.25",
    "hflip+scale0.75",
    "hflip+scale1.25",
    "brightness_contrast",
    "contrast",
    "gamma",
    "rgb_shift",
    "median_blur",
    "sharpen",
    "hflip+gamma",
)
"""The default list: every kind of the paper's augmentations once, plus flip/scale combinations."""


@dataclass(frozen=True)
class Augmentation:
    """One augmentation: ``forward`` maps a uint8 (3, H, W) image to the augmented image, ``inverse`` maps (Q, h, w)
    masks predicted on the augmented image back to the original (H, W) frame."""

    name: str
    forward: ImageFn
    inverse: MaskFn


def _resize_masks(masks: Tensor, size: Tuple[int, int]) -> Tensor:
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks[None].float(), size=size, mode="bilinear", align_corners=False)[0]


def _scale(factor: float) -> Part:
    if not 0.05 <= factor <= 8.0:
        raise PliftDataError(f"scale factor {factor} is outside [0.05, 8]")

    def forward(img: Tensor) -> Tensor:
        h, w = img.shape[-2:]
        size = [max(8, round(h * factor)), max(8, round(w * factor))]
        return TF.resize(img, size, antialias=True)

    return forward, False


def _colour(fn: ImageFn) -> Part:
    return fn, False


def _shift(img: Tensor) -> Tensor:
    offset = torch.tensor([12, -8, 6], dtype=torch.int16, device=img.device)[:, None, None]
    return (img.to(torch.int16) + offset).clamp(0, 255).to(torch.uint8)


def _median3(img: Tensor) -> Tensor:
    padded = F.pad(img[None].float(), (1, 1, 1, 1), mode="replicate")
    patches = F.unfold(padded, kernel_size=3)  # (1, 3*9, H*W)
    h, w = img.shape[-2:]
    med = patches.view(3, 9, h * w).median(dim=1).values
    return med.view(3, h, w).round().clamp(0, 255).to(torch.uint8)


def _param(text: str, default: float) -> float:
    return float(text) if text else default


_PART = re.compile(r"^([a-z_]+?)([0-9]*\.?[0-9]+)?$")


def _parse_part(part: str) -> Part:
    match = _PART.match(part)
    if match is None:
        raise PliftDataError(f"unknown augmentation '{part}' ({_names_help()})")
    kind, value = match.group(1), match.group(2) or ""
    if kind in ("hflip", "flip") and not value:
        return (lambda img: torch.flip(img, dims=[-1])), True
    if kind == "scale" and value:
        return _scale(float(value))
    if kind == "contrast":
        f = _param(value, 1.3)
        return _colour(lambda img: TF.adjust_contrast(img, f))
    if kind == "brightness":
        f = _param(value, 1.2)
        return _colour(lambda img: TF.adjust_brightness(img, f))
    if kind == "brightness_contrast" and not value:
        return _colour(lambda img: TF.adjust_contrast(TF.adjust_brightness(img, 1.15), 0.85))
    if kind == "gamma":
        g = _param(value, 0.8)
        return _colour(lambda img: TF.adjust_gamma(img, g))
    if kind in ("rgb_shift", "colour_shift", "color_shift") and not value:
        return _colour(_shift)
    if kind in ("median_blur", "blur") and not value:
        return _colour(_median3)
    if kind == "sharpen":
        f = _param(value, 2.0)
        return _colour(lambda img: TF.adjust_sharpness(img, f))
    raise PliftDataError(f"unknown augmentation '{part}' ({_names_help()})")


def _names_help() -> str:
    return (
        "known: original, hflip, scale<f>, contrast[<f>], brightness[<f>], brightness_contrast, gamma[<g>], rgb_shift, "
        "median_blur, sharpen[<f>], combined with '+', e.g. hflip+scale0.75"
    )


def parse_augmentation(name: str) -> Augmentation:
    """An :class:`Augmentation` from its name (see the module docstring)."""
    parts = [p.strip().lower() for p in name.split("+") if p.strip()]
    if not parts:
        raise PliftDataError(f"empty augmentation name '{name}'")
    if parts == ["original"]:
        return Augmentation("original", lambda img: img, _resize_masks)
    pairs = [_parse_part(p) for p in parts]
    flipped = sum(flip for _, flip in pairs) % 2 == 1

    def forward(img: Tensor) -> Tensor:
        for fwd, _ in pairs:
            img = fwd(img)
        return img

    def inverse(masks: Tensor, size: Tuple[int, int]) -> Tensor:
        # Colour transforms are pointwise; flips and resizes commute, so undo the net flip, then resize once.
        if flipped:
            masks = torch.flip(masks, dims=[-1])
        return _resize_masks(masks, size)

    return Augmentation("+".join(parts), forward, inverse)


def build_augmentations(names: Optional[Sequence[str]]) -> List[Augmentation]:
    """``original`` followed by the named augmentations (duplicates removed); ``None`` or empty → no TTA."""
    augs = [parse_augmentation("original")]
    seen = {"original"}
    for name in names or ():
        aug = parse_augmentation(name)
        if aug.name not in seen:
            seen.add(aug.name)
            augs.append(aug)
    return augs


def run_tta(
    segmenter: QuerySegmenter,
    image: Tensor,
    augmentations: Sequence[Augmentation],
    select: Optional[Callable[[QueryPrediction], QueryPrediction]] = None,
    chunk: int = 4,
    mask_size: Optional[Tuple[int, int]] = None,
) -> List[QueryPrediction]:
    """Predict on every augmented version of ``image`` (uint8 (3, H, W)) and map the masks back to its frame.

    The masks come back at ``mask_size`` (default: the image size): the segmenter is asked for masks at the augmented
    image's size times ``mask_size / image size``, and the inverse transform resizes them to ``mask_size``.
    ``select`` is applied to each prediction *before* its masks are mapped back (e.g. to drop "no object" queries,
    which keeps memory low); ``chunk`` augmented images are given to the segmenter at a time.
    """
    full = (int(image.shape[-2]), int(image.shape[-1]))
    size = tuple(mask_size) if mask_size is not None else full
    image = image.to(segmenter.device)
    out: List[QueryPrediction] = []
    for start in range(0, len(augmentations), chunk):
        group = augmentations[start : start + chunk]
        augmented = [aug.forward(image) for aug in group]
        sizes = [
            (max(1, round(a.shape[-2] * size[0] / full[0])), max(1, round(a.shape[-1] * size[1] / full[1])))
            for a in augmented
        ]
        preds = segmenter.predict(augmented, mask_sizes=sizes)
        for aug, pred in zip(group, preds):
            if select is not None:
                pred = select(pred)
            masks = aug.inverse(pred.mask_probs, size) if pred.num_queries else pred.mask_probs.new_zeros((0, *size))
            out.append(QueryPrediction(pred.class_probs, masks.clamp(0.0, 1.0)))
    return out
