"""Test fixture: a tiny, randomly initialised ``transformers`` Mask2Former (nothing is downloaded).

``python tests/tiny_mask2former.py /tmp/tiny_m2f`` writes one (config.json, model.safetensors,
preprocessor_config.json) that ``plift-labels --model /tmp/tiny_m2f`` loads like a real checkpoint. It has the 133
COCO-panoptic classes (so the built-in COCO → ScanNet class maps apply). Its class head and mask embedder are scaled up
so that the random network gives peaked class distributions and spatially varying masks — the labels are meaningless,
but every code path (clustering, thing instances, confidences) is exercised.

The weights depend only on ``seed``; the caller's global torch RNG state is left as it was (``fork_rng``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from plift_ns.bench.segmenter import build_mask2former
from plift_ns.data.class_maps import read_class_map


def coco_panoptic_names() -> list:
    """The 133 COCO-panoptic class names in the order of the Mask2Former COCO-panoptic checkpoints."""
    return read_class_map("coco_panoptic_to_scannet21")[0]


def make_tiny_mask2former(output: Path, seed: int = 0) -> None:
    """``save_pretrained`` a tiny random, sharpened Mask2Former (8 queries, images resized to 96..160 px) to
    ``output``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, processor = build_mask2former(
            coco_panoptic_names(), backbone="swin", num_queries=8, shortest_edge=96, longest_edge=160, width=16, depth=1,
            decoder_layers=2, train_num_points=12544,
        )
        _sharpen(model, processor)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    processor.save_pretrained(output)


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
