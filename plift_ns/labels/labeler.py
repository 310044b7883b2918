"""One image in, fused panoptic labels out: augment → segment → fold classes → map back → cluster → fuse."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from plift_ns.data.class_maps import fold_probabilities
from plift_ns.data.classes import ClassSet
from plift_ns.errors import PliftDataError
from plift_ns.labels.fusion import FusedLabels, FusionConfig, fuse_predictions, select_queries
from plift_ns.labels.protocol import QueryPrediction, QuerySegmenter
from plift_ns.labels.tta import Augmentation, build_augmentations, run_tta


class Labeler:
    """Makes the labels of one image with a :class:`QuerySegmenter`, a class map and a list of augmentations.

    Args:
        segmenter: the query segmenter.
        class_set: target class set (its thing flags decide which clusters get instance ids).
        class_matrix: (C_src, C_tgt) 0/1 class map from the segmenter's classes to ``class_set``.
        augmentations: test-time augmentations (``original`` first); default: no TTA.
        fusion: fusion parameters.
        max_side: masks are sampled and fused at a size whose longer side is at most this (the segmenter still sees
            the full image, resized by its own processor); the labels are resized to the image size at the end
            (0: fuse at the native size).
        chunk: augmented images given to the segmenter per call.
    """

    def __init__(
        self,
        segmenter: QuerySegmenter,
        class_set: ClassSet,
        class_matrix: np.ndarray,
        augmentations: Optional[Sequence[Augmentation]] = None,
        fusion: FusionConfig = FusionConfig(),
        max_side: int = 640,
        chunk: int = 4,
    ) -> None:
        if class_matrix.shape != (len(segmenter.class_names), class_set.num_classes):
            raise PliftDataError(
                f"class map is {class_matrix.shape[0]} x {class_matrix.shape[1]} but the segmenter has "
                f"{len(segmenter.class_names)} classes and the class set '{class_set.name}' {class_set.num_classes}"
            )
        self.segmenter = segmenter
        self.class_set = class_set
        self.matrix = torch.as_tensor(class_matrix, dtype=torch.float32, device=segmenter.device)
        self.augmentations = list(augmentations) if augmentations else build_augmentations(None)
        self.fusion = fusion
        self.max_side = max_side
        self.chunk = chunk

    def select(self, pred: QueryPrediction) -> QueryPrediction:
        """Fold a prediction's classes to the target set and keep the candidates worth clustering."""
        folded = fold_probabilities(pred.class_probs.float(), self.matrix)
        keep = select_queries(folded, pred.mask_probs, self.fusion)
        return QueryPrediction(folded[keep], pred.mask_probs[keep])

    def working_size(self, h: int, w: int) -> Tuple[int, int]:
        """(h, w) at which masks are fused."""
        if self.max_side <= 0 or max(h, w) <= self.max_side:
            return h, w
        s = self.max_side / max(h, w)
        return max(1, round(h * s)), max(1, round(w * s))

    @torch.no_grad()
    def label(self, image: np.ndarray) -> FusedLabels:
        """Labels of an RGB uint8 image (H, W, 3) at its own size."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PliftDataError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
        work = self.working_size(*image.shape[:2])
        preds = run_tta(self.segmenter, tensor, self.augmentations, self.select, self.chunk, mask_size=work)
        return fuse_predictions(preds, self.class_set.isthing, self.fusion, out_size=tuple(image.shape[:2]))
