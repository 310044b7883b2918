"""Instance fragments in a rendered image: surrogate ids that cover a sliver of a thing class's pixels.

Where the surrogate-id distribution π is nearly tied (object boundaries, surfaces seen by few training views), its
argmax flips to an id that owns no object there. Each such sliver is a segment of its own, so at scene level it is
one more false positive for its class. A thing id covering fewer than ``min_pixels`` of its class's pixels in the
image is merged into the id, among those of the same class that do reach it, that π ranks highest at each pixel
(what Mask2Former's panoptic inference does with masks that lose most of their area). A class with no id that
reaches it keeps its ids: a small object seen at the image's edge is not a fragment of anything.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


def merge_instance_fragments(
    semantics: Int[Tensor, "*hw"],
    instance: Int[Tensor, "*hw"],
    instance_probs: Float[Tensor, "*hw K"],
    thing_mask: Bool[Tensor, " C"],
    min_pixels: float,
) -> Int[Tensor, "*hw"]:
    """Surrogate ids (1..K, 0 on stuff) with each thing class's fragments merged into its kept ids (see module)."""
    if min_pixels <= 0:
        return instance
    thing = thing_mask[semantics]
    if not bool(thing.any()):
        return instance
    num_ids = instance_probs.shape[-1] + 1
    counts = torch.bincount((semantics * num_ids + instance)[thing], minlength=len(thing_mask) * num_ids)
    counts = counts.view(len(thing_mask), num_ids)
    kept = counts >= min_pixels
    fragment = thing & (counts > 0)[semantics, instance] & ~kept[semantics, instance] & kept[:, 1:].any(dim=1)[semantics]
    if not bool(fragment.any()):
        return instance
    scores = instance_probs[fragment].float().masked_fill(~kept[semantics[fragment], 1:], float("-inf"))
    merged = instance.clone()
    merged[fragment] = scores.argmax(dim=-1) + 1
    return merged
