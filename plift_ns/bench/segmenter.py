"""Machine-made 2D labels for the quality benchmark: a small ``transformers`` Mask2Former trained from scratch on
generated scenes that share no seed with the evaluation scenes. Its predictions on the evaluation scenes are
genuinely view-inconsistent and noisy, unlike the hand-written noise of :mod:`plift_ns.synthetic.noise`.

The trained model is written with ``save_pretrained`` (weights, config, image processor), so ``plift-labels --model
<folder>`` loads it exactly like a hub checkpoint, with the class map ``identity``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Literal, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from plift_ns.data.classes import ClassSet, load_class_set
from plift_ns.data.label_io import read_label_png, read_semantics
from plift_ns.errors import PliftDataError

Backbone = Literal["resnet", "swin"]
"""The segmenter's backbone: ResNet (basic blocks) or Swin."""


@dataclass
class SegmenterTrainConfig:
    """Size and schedule of the from-scratch Mask2Former (CPU-sized by default: about 25-30 min on 2 cores)."""

    backbone: Backbone = "resnet"
    """ResNet (basic blocks, ResNet-18 layout at depth 2) or Swin. From random weights the ResNet learns several times
    faster per step here (proxy mIoU 27 against 11 after 200 steps) and its steps are cheaper."""
    width: int = 32
    """Backbone embedding size, doubled at each stage (the pixel decoder and transformer decoder are twice as wide)."""
    depth: int = 2
    """Backbone blocks per stage."""
    decoder_layers: int = 3
    num_queries: int = 32
    train_num_points: int = 2048
    """Points sampled per mask by the matcher and the mask losses (Mask2Former's default 12544 is 3x slower here)."""
    steps: int = 1500
    batch_size: int = 8
    lr: float = 4e-4
    weight_decay: float = 0.05
    seed: int = 0
    flip: bool = True
    """Random horizontal flips during training."""
    scale_jitter: float = 0.25
    """Random zoom by a factor in [1 / (1 + s), 1 + s] (log-uniform): zooming in crops and enlarges, zooming out
    shrinks the image into a black canvas (0: off)."""
    colour_jitter: float = 0.3
    """Random brightness, contrast and gamma, each a factor in [1 / (1 + c), 1 + c] (log-uniform), and per-channel
    gains in [1 / (1 + c / 3), 1 + c / 3] (0: off). It covers the photometric test-time variants of ``plift-labels``
    (contrast 1.3, brightness 1.2, gamma 0.8). Trained without it, this segmenter's labels lost 7.7 mIoU under those
    variants; with it, 1.3-1.9 (``scripts/reports/2026-12-02-segmenter.md``)."""


def panoptic_targets(
    semantics: Int[Tensor, "H W"], instance: Int[Tensor, "H W"], class_set: ClassSet
) -> Tuple[Float[Tensor, "n H W"], Int[Tensor, " n"]]:
    """Mask2Former targets of one GT frame: one binary mask per stuff class present and per thing instance; void
    pixels (``< 0``) belong to no mask. Thing pixels without an instance id are dropped too."""
    masks: List[Tensor] = []
    classes: List[int] = []
    for c in torch.unique(semantics).tolist():
        if c < 0 or c >= class_set.num_classes:
            continue
        region = semantics == c
        if not class_set.isthing[c]:
            masks.append(region)
            classes.append(c)
            continue
        for h in torch.unique(instance[region]).tolist():
            if h > 0:
                masks.append(region & (instance == h))
                classes.append(c)
    h, w = semantics.shape
    if not masks:
        return torch.zeros(0, h, w), torch.zeros(0, dtype=torch.long)
    return torch.stack(masks).float(), torch.tensor(classes, dtype=torch.long)


def load_training_frames(
    scenes: Sequence[Path], class_set: ClassSet
) -> List[Tuple[np.ndarray, Tensor, Tensor]]:
    """(RGB uint8 image, GT semantics, GT instance ids) of every frame (train and test) of the given scenes."""
    from PIL import Image

    frames = []
    for scene in scenes:
        meta = json.loads((scene / "transforms.json").read_text())
        if meta.get("panoptic_classes", class_set.name) != class_set.name:
            raise PliftDataError(f"class set '{meta.get('panoptic_classes')}' is not '{class_set.name}'", scene)
        for frame in meta["frames"]:
            if "gt_semantics_path" not in frame or "gt_instance_path" not in frame:
                raise PliftDataError("frame has no GT labels to train a segmenter on", scene / frame["file_path"])
            image = np.asarray(Image.open(scene / frame["file_path"]).convert("RGB"))
            sem = torch.from_numpy(read_semantics(scene / frame["gt_semantics_path"], class_set).astype(np.int64))
            inst = torch.from_numpy(read_label_png(scene / frame["gt_instance_path"]).astype(np.int64))
            frames.append((image, sem, inst))
    return frames


def build_mask2former(
    class_names: Sequence[str],
    backbone: Backbone,
    num_queries: int,
    shortest_edge: int,
    longest_edge: int,
    width: int,
    depth: int,
    decoder_layers: int,
    train_num_points: int,
):
    """A small ``transformers`` Mask2Former (ResNet or Swin backbone) with fresh random weights, drawn from torch's
    global RNG (seed it first for reproducible weights), in eval mode; returns (model, image processor). Nothing is
    downloaded.

    ``width`` is the backbone's embedding size (the transformer is twice as wide), ``depth`` its blocks per stage;
    ``train_num_points`` the points sampled per mask by the training loss (fewer: faster CPU training).
    """
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessor,
        ResNetConfig,
        SwinConfig,
    )

    names = list(class_names)
    feedforward = 32 if width <= 16 else 4 * width
    stages = ["stage1", "stage2", "stage3", "stage4"]
    if backbone == "resnet":
        backbone_config = ResNetConfig(
            embedding_size=width, hidden_sizes=[width, 2 * width, 4 * width, 8 * width], depths=[depth] * 4,
            layer_type="basic", out_features=stages,
        )
    elif backbone == "swin":
        backbone_config = SwinConfig(
            image_size=64, patch_size=4, embed_dim=width, depths=[depth] * 4,
            num_heads=[1, 1, 2, 2] if width > 16 else [1] * 4, window_size=4, out_features=stages,
        )
    else:
        raise ValueError(f"unknown backbone '{backbone}' (resnet or swin)")
    config = Mask2FormerConfig(
        backbone_config=backbone_config, hidden_dim=2 * width, feature_size=2 * width, mask_feature_size=2 * width,
        encoder_layers=1, decoder_layers=decoder_layers, num_queries=num_queries, num_attention_heads=2,
        dim_feedforward=feedforward, encoder_feedforward_dim=feedforward, num_labels=len(names), use_pretrained_backbone=False,
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}, train_num_points=train_num_points,
    )
    model = Mask2FormerForUniversalSegmentation(config).eval()
    processor = Mask2FormerImageProcessor(size={"shortest_edge": shortest_edge, "longest_edge": longest_edge})
    return model, processor


def augment(
    image: Float[Tensor, "3 H W"],
    masks: Float[Tensor, "n H W"],
    labels: Int[Tensor, " n"],
    generator: torch.Generator,
    flip: bool,
    scale_jitter: float,
) -> Tuple[Float[Tensor, "3 H W"], Float[Tensor, "m H W"], Int[Tensor, " m"]]:
    """One training sample's random flip and zoom (see :class:`SegmenterTrainConfig`), applied alike to the image
    (bilinear) and its masks (nearest). Masks that leave the frame are dropped with their labels."""
    h, w = image.shape[-2:]
    if flip and float(torch.rand(1, generator=generator)) < 0.5:
        image, masks = image.flip(-1), masks.flip(-1)
    if scale_jitter <= 0:
        return image, masks, labels
    s = math.exp((float(torch.rand(1, generator=generator)) * 2 - 1) * math.log(1 + scale_jitter))
    ch, cw = (round(h / s), round(w / s)) if s > 1 else (round(h * s), round(w * s))
    y0 = int(torch.randint(h - ch + 1, (1,), generator=generator))
    x0 = int(torch.randint(w - cw + 1, (1,), generator=generator))
    if s > 1:  # zoom in: enlarge a (h / s, w / s) crop to the frame
        image = F.interpolate(image[None, :, y0 : y0 + ch, x0 : x0 + cw], size=(h, w), mode="bilinear", align_corners=False)[0]
        masks = F.interpolate(masks[None, :, y0 : y0 + ch, x0 : x0 + cw], size=(h, w), mode="nearest")[0]
    else:  # zoom out: shrink the frame into a black canvas
        canvas, canvas_masks = torch.zeros_like(image), torch.zeros_like(masks)
        canvas[:, y0 : y0 + ch, x0 : x0 + cw] = F.interpolate(image[None], size=(ch, cw), mode="bilinear", align_corners=False)[0]
        canvas_masks[:, y0 : y0 + ch, x0 : x0 + cw] = F.interpolate(masks[None], size=(ch, cw), mode="nearest")[0]
        image, masks = canvas, canvas_masks
    keep = masks.flatten(1).sum(dim=1) > 0
    return image, masks[keep], labels[keep]


def jitter_colours(image: Float[Tensor, "3 H W"], generator: torch.Generator, strength: float) -> Float[Tensor, "3 H W"]:
    """Random brightness, contrast, gamma and per-channel gains (see :class:`SegmenterTrainConfig`) of an image in
    [0, 1]; the result stays in [0, 1]."""
    if strength <= 0:
        return image

    def factor(jitter: float) -> float:
        return math.exp((float(torch.rand(1, generator=generator)) * 2 - 1) * math.log(1 + jitter))

    brightness, contrast, gamma = factor(strength), factor(strength), factor(strength)
    gains = torch.tensor([factor(strength / 3) for _ in range(3)], dtype=image.dtype)[:, None, None]
    image = (image * brightness).clamp(0, 1)
    grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).mean()
    image = ((image - grey) * contrast + grey).clamp(0, 1)
    return (image.pow(gamma) * gains).clamp(0, 1)


def train_segmenter(
    scenes: Sequence[Path],
    output: Path,
    config: Optional[SegmenterTrainConfig] = None,
    class_set: Optional[ClassSet] = None,
    device: str = "cpu",
    progress: Optional[Callable[[int, float], None]] = None,
) -> Path:
    """Train a Mask2Former from random weights on the GT panoptic labels of ``scenes``; ``save_pretrained`` it to
    ``output`` (written to a sibling temporary folder, then renamed). ``progress(step, loss)`` is called every step.

    Training sees the frames at their own size (the image processor's padding only at inference)."""
    config = config or SegmenterTrainConfig()
    class_set = class_set or load_class_set("scannet21")
    frames = load_training_frames(scenes, class_set)
    if not frames:
        raise PliftDataError("no frames to train the segmenter on", Path(scenes[0]) if scenes else None)
    h, w = frames[0][1].shape
    torch.manual_seed(config.seed)  # this run's initial weights and the loss's random point sampling
    model, processor = build_mask2former(
        class_set.names, backbone=config.backbone, num_queries=config.num_queries, shortest_edge=min(h, w),
        longest_edge=max(h, w), width=config.width, depth=config.depth, decoder_layers=config.decoder_layers,
        train_num_points=config.train_num_points,
    )
    # in [0, 1]: the zoom's canvas is black and the colour jitter works on the image; normalised after both
    pixel_values = processor(images=[f[0] for f in frames], do_normalize=False, return_tensors="pt")["pixel_values"]
    mean = torch.tensor(processor.image_mean)[:, None, None]
    std = torch.tensor(processor.image_std)[:, None, None]
    ph, pw = pixel_values.shape[-2:]
    if ph < h or pw < w:
        raise PliftDataError(f"the image processor resized {w}x{h} frames to {pw}x{ph}; use frames of one size")
    pixel_values = pixel_values[..., :h, :w]
    targets = [panoptic_targets(sem, inst, class_set) for _, sem, inst in frames]

    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.05)
    generator = torch.Generator().manual_seed(config.seed)
    for step in range(config.steps):
        values, masks, labels = [], [], []
        for i in torch.randint(len(frames), (config.batch_size,), generator=generator).tolist():
            value, mask, label = augment(pixel_values[i], *targets[i], generator, config.flip, config.scale_jitter)
            values.append((jitter_colours(value, generator, config.colour_jitter) - mean) / std)
            masks.append(mask.to(device))
            labels.append(label.to(device))
        out = model(pixel_values=torch.stack(values).to(device), mask_labels=masks, class_labels=labels)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        loss = out.loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if progress is not None:
            progress(step, loss)
    model.eval().cpu()
    output = Path(output)
    tmp = output.with_name(output.name + f".tmp-{int(time.time())}")
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    if output.exists():
        import shutil

        shutil.rmtree(output)
    tmp.rename(output)
    return output
