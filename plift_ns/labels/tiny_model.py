"""A tiny, randomly initialised ``transformers`` Mask2Former for tests and CPU demos (nothing is downloaded).

``python -m plift_ns.labels.tiny_model /tmp/tiny_m2f`` writes one (config.json, model.safetensors,
preprocessor_config.json) that ``plift-labels --model /tmp/tiny_m2f`` loads like a real checkpoint. By default it has
the 133 COCO-panoptic classes (so the built-in COCO → ScanNet class maps apply). Its class head and mask embedder are
scaled up so that the random network gives peaked class distributions and spatially varying masks — the labels are
meaningless, but every code path (clustering, thing instances, confidences) is exercised.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from plift_ns.labels.class_map import read_class_map


def coco_panoptic_names() -> list:
    """The 133 COCO-panoptic class names in the order of the Mask2Former COCO-panoptic checkpoints."""
    return read_class_map("coco_panoptic_to_scannet21")[0]


def make_tiny_mask2former(
    output: Optional[Path] = None,
    class_names: Optional[Sequence[str]] = None,
    num_queries: int = 8,
    shortest_edge: int = 96,
    longest_edge: int = 160,
    seed: int = 0,
    sharpen: bool = True,
    width: int = 16,
    depth: int = 1,
    decoder_layers: int = 2,
    train_num_points: int = 12544,
):
    """Build (and, with ``output``, ``save_pretrained``) a tiny random Mask2Former; returns (model, image processor).

    ``width`` is the Swin embedding size (the transformer is twice as wide), ``depth`` the Swin blocks per stage;
    ``train_num_points`` the points sampled per mask by the training loss (fewer: faster CPU training).
    """
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessor,
        SwinConfig,
    )

    names = list(class_names) if class_names is not None else coco_panoptic_names()
    feedforward = 32 if width <= 16 else 4 * width
    backbone = SwinConfig(
        image_size=64, patch_size=4, embed_dim=width, depths=[depth] * 4, num_heads=[1, 1, 2, 2] if width > 16 else [1] * 4,
        window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = Mask2FormerConfig(
        backbone_config=backbone, hidden_dim=2 * width, feature_size=2 * width, mask_feature_size=2 * width,
        encoder_layers=1, decoder_layers=decoder_layers, num_queries=num_queries, num_attention_heads=2,
        dim_feedforward=feedforward, encoder_feedforward_dim=feedforward, num_labels=len(names), use_pretrained_backbone=False,
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}, train_num_points=train_num_points,
    )
    torch.manual_seed(seed)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    processor = Mask2FormerImageProcessor(size={"shortest_edge": shortest_edge, "longest_edge": longest_edge})
    if sharpen:
        _sharpen(model, processor)
    if output is not None:
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(output)
        processor.save_pretrained(output)
    return model, processor


def _sharpen(model, processor) -> None:
    """Peaked class distributions (scaled class head) and distinct masks: the random queries' mask embeddings share a
    large common part, which is cancelled by the last mask-embedder layer's bias (measured on a smooth random image)
    before the differences are amplified."""
    last = model.get_submodule("model.transformer_module.decoder.mask_predictor.mask_embedder.2.0")
    seen = []
    hook = last.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8), size=(96, 128), mode="bicubic")[0]
    with torch.no_grad():
        model(**processor(images=[(image.clamp(0, 1) * 255).to(torch.uint8)], return_tensors="pt"))
        hook.remove()
        mean = seen[-1].reshape(-1, seen[-1].shape[-1]).mean(dim=0)
        model.class_predictor.weight.mul_(60.0)
        model.class_predictor.bias.normal_(0.0, 2.0)
        last.weight.mul_(300.0)
        last.bias.copy_(-last.weight @ mean)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny_m2f")
    make_tiny_mask2former(out)
    print(f"wrote {out}")
