"""The default :class:`~plift_ns.labels.protocol.QuerySegmenter`: a ``transformers`` universal-segmentation model.

Mask2Former (the paper's model: ``facebook/mask2former-swin-large-coco-panoptic``), MaskFormer, OneFormer (task
"panoptic") and EoMT all output per-query ``class_queries_logits`` (B, Q, C + 1) and ``masks_queries_logits``
(B, Q, h, w) before their panoptic post-processing; this backend returns them as class softmax + sigmoid masks
resampled to the input image (padding removed exactly, using the processor's pixel mask or its resize rule).

Loading never hangs offline: a local folder is read with ``local_files_only``; a hub id is first looked up in the
local cache, and only when it is missing and the hub is allowed (``HF_HUB_OFFLINE`` unset) and reachable is it
downloaded. Every failure is a :class:`~plift_ns.errors.PliftDataError` that says what to do.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor

from plift_ns.devices import default_device
from plift_ns.errors import PliftDataError
from plift_ns.labels.protocol import QueryPrediction

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("mask2former", "maskformer", "oneformer", "eomt", "eomt_dinov3")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for no network."""
    return any(os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 5.0) -> bool:
    """Whether the hub endpoint (``HF_ENDPOINT``, default huggingface.co) accepts a TCP connection within ``timeout``."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_error(model: str, err: BaseException, why: str) -> PliftDataError:
    return PliftDataError(f"cannot load the segmentation model '{model}': {why} ({type(err).__name__}: {err})")


class HFQuerySegmenter:
    """A ``transformers`` Mask2Former / MaskFormer / OneFormer / EoMT model as a query segmenter.

    Args:
        model: hub id (e.g. ``facebook/mask2former-swin-large-coco-panoptic``) or a local folder written by
            ``save_pretrained`` (config.json + weights, ideally preprocessor_config.json).
        device: torch device (default: :func:`default_device`).
        batch_size: images per forward pass (images of different sizes are never batched together).
        local_files_only: never use the network (also implied by ``HF_HUB_OFFLINE=1``).
    """

    def __init__(
        self,
        model: str,
        device: Optional[str | torch.device] = None,
        batch_size: int = 2,
        local_files_only: bool = False,
    ) -> None:
        self.model_id = str(model)
        self.device = torch.device(device) if device is not None else default_device(allow_mps=True)
        self.batch_size = max(1, int(batch_size))
        self.model, self.processor = self._load(self.model_id, local_files_only or hub_offline())
        self.model.to(self.device).eval()
        config = self.model.config
        self.model_type = str(config.model_type)
        id2label = {int(k): str(v) for k, v in config.id2label.items()}
        self.class_names: List[str] = [id2label.get(i, f"class_{i}") for i in range(len(id2label))]
        self._forward_args = set(inspect.signature(self.model.forward).parameters)

    # ------------------------------------------------------------------ loading
    def _load(self, model: str, offline: bool) -> Tuple[Any, Any]:
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise PliftDataError(
                "the transformers backend needs the 'transformers' package: pip install 'plift-ns[labels]'"
            ) from None
        path = Path(model).expanduser()
        if path.exists():
            if not (path / "config.json").exists():
                raise PliftDataError("not a transformers model folder (no config.json)", path)
            return self._from_pretrained(str(path), True, model)
        looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model
        if looks_like_path:
            raise PliftDataError("model folder not found (give an existing folder or a hub id like 'org/name')", path)
        try:
            return self._from_pretrained(model, True, model)  # the local hub cache first: no network
        except PliftDataError:
            if offline:
                raise PliftDataError(
                    f"segmentation model '{model}' was not found locally (not a folder and not in the hub cache) and "
                    "the hub may not be used (HF_HUB_OFFLINE is set / --local-files-only): download it once on a "
                    "machine with network, or give a local folder"
                ) from None
        if not hub_reachable():
            raise PliftDataError(
                f"segmentation model '{model}' is not in the local hub cache and the hub cannot be reached (the machine "
                "is offline?): download it once with network, or give a local folder"
            )
        return self._from_pretrained(model, False, model)

    def _from_pretrained(self, source: str, local_only: bool, model: str) -> Tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForUniversalSegmentation

        try:
            config = AutoConfig.from_pretrained(source, local_files_only=local_only)
        except (OSError, ValueError) as err:
            raise _load_error(model, err, "no usable config.json found" + (" locally" if local_only else "")) from None
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise PliftDataError(
                f"model '{model}' is a '{config.model_type}'; the transformers backend supports "
                f"{', '.join(SUPPORTED_MODEL_TYPES)} (query-based universal segmentation models)"
            )
        try:
            net = AutoModelForUniversalSegmentation.from_pretrained(source, config=config, local_files_only=local_only)
        except (OSError, ValueError) as err:
            raise _load_error(model, err, "its weights could not be loaded" + (" locally" if local_only else "")) from None
        return net, self._load_processor(source, local_only, model, config.model_type)

    def _load_processor(self, source: str, local_only: bool, model: str, model_type: str) -> Any:
        from transformers import AutoImageProcessor, AutoProcessor

        try:
            if model_type == "oneformer":
                return AutoProcessor.from_pretrained(source, local_files_only=local_only)
            return AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
        except (OSError, ValueError) as err:
            if model_type == "oneformer":
                raise _load_error(model, err, "OneFormer needs its processor (image processor + tokenizer)") from None
            import transformers

            cls_name = {"mask2former": "Mask2FormerImageProcessor", "maskformer": "MaskFormerImageProcessor"}.get(
                model_type, "EomtImageProcessor"
            )
            logger.warning("%s has no image-processor config; using default %s settings", model, cls_name)
            return getattr(transformers, cls_name)()

    # --------------------------------------------------------------- prediction
    def _inputs(self, batch: List[Tensor]) -> Dict[str, Tensor]:
        images = [img.detach().cpu() for img in batch]
        if self.model_type == "oneformer":
            feats = self.processor(images=images, task_inputs=["panoptic"] * len(images), return_tensors="pt")
        else:
            feats = self.processor(images=images, return_tensors="pt")
        if "patch_offsets" in feats and feats["patch_offsets"] is not None and len(feats["patch_offsets"]):
            raise PliftDataError(f"'{self.model_id}': image splitting (semantic-only EoMT set-up) is not supported")
        return {k: v.to(self.device) for k, v in feats.items() if k in self._forward_args and isinstance(v, Tensor)}

    def _valid_size(self, inputs: Dict[str, Tensor], size: Tuple[int, int]) -> Tuple[int, int]:
        """(h, w) of the resized image inside the padded model input."""
        padded = tuple(inputs["pixel_values"].shape[-2:])
        if "pixel_mask" in inputs:
            mask = inputs["pixel_mask"][0].bool()
            return int(mask.any(dim=1).sum()), int(mask.any(dim=0).sum())
        if getattr(self.processor, "do_pad", False):
            from transformers.image_transforms import get_size_with_aspect_ratio

            s = self.processor.size
            short = s["shortest_edge"] if isinstance(s, dict) else s.shortest_edge
            long = s["longest_edge"] if isinstance(s, dict) else s.longest_edge
            h, w = get_size_with_aspect_ratio(size, short, long)
            return min(int(h), padded[0]), min(int(w), padded[1])
        return int(padded[0]), int(padded[1])

    @torch.no_grad()
    def _predict_batch(self, batch: List[Tensor], mask_size: Tuple[int, int]) -> List[QueryPrediction]:
        size = (int(batch[0].shape[-2]), int(batch[0].shape[-1]))
        h, w = mask_size
        inputs = self._inputs(batch)
        outputs = self.model(**inputs)
        class_probs = outputs.class_queries_logits.float().softmax(dim=-1)
        if class_probs.shape[-1] != len(self.class_names) + 1:
            raise PliftDataError(
                f"'{self.model_id}' outputs {class_probs.shape[-1]} class columns, expected {len(self.class_names)} "
                "classes (id2label) + no object"
            )
        logits = outputs.masks_queries_logits.float()
        pad_h, pad_w = inputs["pixel_values"].shape[-2:]
        valid_h, valid_w = self._valid_size(inputs, size)
        # Pixel centres of an (h, w) grid over the image → the valid region of the padded input, in [-1, 1].
        ys = (torch.arange(h, device=logits.device) + 0.5) * (valid_h / h) * (2.0 / pad_h) - 1.0
        xs = (torch.arange(w, device=logits.device) + 0.5) * (valid_w / w) * (2.0 / pad_w) - 1.0
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].expand(len(batch), h, w, 2)
        masks = F.grid_sample(logits, grid, mode="bilinear", padding_mode="border", align_corners=False).sigmoid()
        return [QueryPrediction(class_probs[i], masks[i]) for i in range(len(batch))]

    def predict(
        self, images: Sequence[Tensor], mask_sizes: Optional[Sequence[Tuple[int, int]]] = None
    ) -> List[QueryPrediction]:
        """Per-query class distributions and soft masks of uint8 (3, H, W) images (any sizes); masks at the image
        size or at ``mask_sizes[i]``."""
        out: List[Optional[QueryPrediction]] = [None] * len(images)
        groups: Dict[Tuple[Tuple[int, ...], Tuple[int, int]], List[int]] = defaultdict(list)
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[0] != 3:
                raise PliftDataError(f"expected RGB images (3, H, W), got shape {tuple(img.shape)}")
            mask_size = tuple(int(v) for v in (mask_sizes[i] if mask_sizes is not None else img.shape[-2:]))
            groups[(tuple(img.shape), mask_size)].append(i)  # type: ignore[index]
        for (_, mask_size), idxs in groups.items():
            for start in range(0, len(idxs), self.batch_size):
                chunk = idxs[start : start + self.batch_size]
                for i, pred in zip(chunk, self._predict_batch([images[i] for i in chunk], mask_size)):
                    out[i] = pred
        return out  # type: ignore[return-value]
