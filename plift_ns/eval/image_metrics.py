"""Per-image panoptic figures for nerfstudio's ``get_image_metrics_and_images`` (so ``ns-eval`` reports them)."""

from __future__ import annotations

from typing import Dict

import numpy as np
from jaxtyping import Int
from torch import Tensor

from plift_ns.data.classes import ClassSet
from plift_ns.eval.metrics import PanopticEvaluator


def to_void_id(labels: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """Map the in-memory void (-1) back to the class set's void id."""
    return np.where(labels < 0, class_set.void_id, labels)


def frame_metrics(
    sem: Int[Tensor, "H W"], inst: Int[Tensor, "H W"], gt_sem: Int[Tensor, "H W"], gt_inst: Int[Tensor, "H W"],
    class_set: ClassSet,
) -> Dict[str, float]:
    """Standard PQ/SQ/RQ and mIoU of one rendered view against its ground truth (fractions in [0, 1])."""
    evaluator = PanopticEvaluator(class_set, void_id=class_set.void_id)
    evaluator.add_frame(
        sem.cpu().numpy(), inst.cpu().numpy(), to_void_id(gt_sem.cpu().numpy(), class_set), gt_inst.cpu().numpy()
    )
    result = evaluator.compute()
    return {key: float(result[key]) for key in ("PQ", "SQ", "RQ", "mIoU")}
