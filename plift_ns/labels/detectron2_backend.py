"""Optional backend: the original detectron2 Mask2Former (as used by the paper's authors) behind the same protocol.

detectron2 and the Mask2Former project (``mask2former`` package) are *not* requirements — they cannot be installed
from the package registries this project uses. Everything is imported inside :func:`load_detectron2_segmenter`; when
they are missing the user gets a clear :class:`~plift_ns.errors.PliftDataError`. The transformers backend (the
default) loads the same COCO-panoptic Swin-L weights from the hub (``facebook/mask2former-swin-large-coco-panoptic``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from plift_ns.devices import default_device
from plift_ns.errors import PliftDataError
from plift_ns.labels.protocol import QueryPrediction

MISSING_MESSAGE = "detectron2 is not installed; use the transformers backend (default)"


class Detectron2QuerySegmenter:
    """A detectron2 Mask2Former whose raw query outputs (``pred_logits``, ``pred_masks``) are returned unfused."""

    def __init__(self, model: Any, class_names: List[str], device: torch.device, input_format: str = "RGB",
                 min_size: int = 800, max_size: int = 1333) -> None:
        self.model = model
        self.class_names = class_names
        self.device = device
        self.input_format = input_format
        self.min_size, self.max_size = min_size, max_size

    @torch.no_grad()
    def predict(
        self, images: Sequence[Tensor], mask_sizes: Optional[Sequence[Tuple[int, int]]] = None
    ) -> List[QueryPrediction]:
        out = []
        for n, img in enumerate(images):
            h, w = (int(v) for v in img.shape[-2:])
            s = min(self.min_size / min(h, w), self.max_size / max(h, w))
            x = img.to(self.device).float()
            if self.input_format == "BGR":
                x = x.flip(0)
            x = F.interpolate(x[None], size=(round(h * s), round(w * s)), mode="bilinear", align_corners=False)[0]
            x = (x - self.model.pixel_mean) / self.model.pixel_std
            div = self.model.size_divisibility
            pad_h, pad_w = (-x.shape[1]) % div, (-x.shape[2]) % div
            rh, rw = x.shape[1:]
            x = F.pad(x, (0, pad_w, 0, pad_h))
            outputs = self.model.sem_seg_head(self.model.backbone(x[None]))
            probs = outputs["pred_logits"][0].float().softmax(dim=-1)
            logits = F.interpolate(outputs["pred_masks"].float(), size=x.shape[1:], mode="bilinear", align_corners=False)
            size = tuple(mask_sizes[n]) if mask_sizes is not None else (h, w)
            masks = F.interpolate(logits[:, :, :rh, :rw], size=size, mode="bilinear", align_corners=False)[0]
            out.append(QueryPrediction(probs, masks.sigmoid()))
        return out


def load_detectron2_segmenter(config_file: Path, weights: Path, device: Optional[str] = None) -> Detectron2QuerySegmenter:
    """Build a detectron2 Mask2Former from its YAML config and weights (needs detectron2 + the mask2former package)."""
    try:
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.data import MetadataCatalog
        from detectron2.modeling import build_model
        from detectron2.projects.deeplab import add_deeplab_config
        from mask2former import add_maskformer2_config
    except ImportError as err:
        raise PliftDataError(f"{MISSING_MESSAGE} ({err})") from None
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    cfg.merge_from_file(str(config_file))
    cfg.MODEL.WEIGHTS = str(weights)
    cfg.MODEL.DEVICE = str(torch.device(device) if device else default_device())
    cfg.freeze()
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    meta = MetadataCatalog.get(cfg.DATASETS.TEST[0]) if cfg.DATASETS.TEST else None
    names = list(getattr(meta, "stuff_classes", []) or [])
    if not names:
        raise PliftDataError("the detectron2 config names no dataset with class names (DATASETS.TEST)", config_file)
    return Detectron2QuerySegmenter(
        model, names, torch.device(cfg.MODEL.DEVICE), cfg.INPUT.FORMAT, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
    )
