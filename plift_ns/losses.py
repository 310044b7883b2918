"""Panoptic Lifting losses (Sec. 3.3 of the paper) as pure, device-agnostic torch functions.

Conventions shared by every loss here:

* Each loss is ``-(1/|R|) * sum_{r in R} w_r * log p_r(target_r)``: a confidence-weighted *sum* divided by the
  *number* of counted rays ``|R|`` (not by the sum of the weights). Rays that are not counted (void, no instance,
  unassigned instance, ignored segment) contribute to neither the numerator nor ``|R|``.
* Inputs are rendered probability distributions by default. They may sum to less than one (accumulation < 1); they
  are never renormalised, only clamped to ``eps`` before the log. With ``from_logits=True`` the inputs are rendered
  logits and ``log_softmax`` is used instead (the "unbounded logits" ablation, Table 2).
* When no ray is counted (including empty inputs) the loss is an exact zero that is still connected to the graph of
  ``probs`` (same dtype/device; ``backward()`` works and yields zero gradients).
* Discrete targets (Hungarian assignment, segment majority class) are computed without gradient; gradients flow only
  into ``probs``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from scipy.optimize import linear_sum_assignment
from torch import Tensor

__all__ = [
    "semantic_loss",
    "hungarian_assignment",
    "instance_targets",
    "instance_loss",
    "segment_majority_class",
    "segment_consistency_loss",
    "panoptic_segment_ids",
]


def _check_rays(probs: Tensor, *others: Tuple[str, Optional[Tensor]]) -> None:
    """Validate that ``probs`` is (N, C) and every other tensor has N rows."""
    if probs.dim() != 2:
        raise ValueError(f"expected probs of shape (N, C), got {tuple(probs.shape)}")
    n = probs.shape[0]
    for name, t in others:
        if t is not None and t.shape[0] != n:
            raise ValueError(f"{name} has {t.shape[0]} rows but probs has {n}")


def _as_probs(probs: Tensor, from_logits: bool) -> Tensor:
    """Probability distributions from rendered probabilities (unchanged) or logits (softmax)."""
    return torch.softmax(probs, dim=-1) if from_logits else probs


def _gather_log_prob(probs: Tensor, target: Tensor, from_logits: bool, eps: float) -> Tensor:
    """log p_r(target_r) for every ray; ``target`` entries < 0 are replaced by 0 (mask them out afterwards)."""
    idx = target.clamp(min=0).long().unsqueeze(-1)
    if from_logits:
        return torch.log_softmax(probs, dim=-1).gather(-1, idx).squeeze(-1)
    return probs.gather(-1, idx).squeeze(-1).clamp(min=eps).log()


def _masked_weighted_mean(nll: Tensor, confidence: Tensor, mask: Tensor) -> Tensor:
    """sum_{mask} w * nll / max(|mask|, 1); an exact, graph-connected zero when nothing is masked in."""
    w = confidence.to(dtype=nll.dtype, device=nll.device)
    terms = torch.where(mask, w * nll, torch.zeros_like(nll))
    return terms.sum() / mask.sum().clamp(min=1).to(nll.dtype)


def semantic_loss(
    probs: Float[Tensor, "N C"],
    target: Float[Tensor, "N C"],
    confidence: Float[Tensor, " N"],
    valid: Optional[Bool[Tensor, " N"]] = None,
    eps: float = 1e-8,
    from_logits: bool = False,
) -> Tensor:
    """Semantic loss, Eq. 4: ``-(1/|R|) sum_r w_r sum_k target_r(k) log probs_r(k)``.

    Args:
        probs: rendered class distributions (or logits if ``from_logits``); not renormalised, clamped to ``eps``.
        target: per-ray target distributions (e.g. TTA-averaged 2D predictions, or one-hot labels).
        confidence: per-ray weights ``w_r``.
        valid: rays to count (False = void); ``|R|`` is the number of valid rays. ``None`` = all rays.
    """
    _check_rays(probs, ("target", target), ("confidence", confidence), ("valid", valid))
    if target.shape != probs.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != probs shape {tuple(probs.shape)}")
    if from_logits:
        log_p = torch.log_softmax(probs, dim=-1)
    else:
        log_p = probs.clamp(min=eps).log()
    nll = -(target.to(dtype=log_p.dtype, device=log_p.device) * log_p).sum(dim=-1)
    mask = torch.ones_like(nll, dtype=torch.bool) if valid is None else valid.to(device=nll.device, dtype=torch.bool)
    return _masked_weighted_mean(nll, confidence, mask)


@torch.no_grad()
def hungarian_assignment(
    probs: Float[Tensor, "N K"],
    instance_ids: Int[Tensor, " N"],
    from_logits: bool = False,
) -> Tuple[Int[Tensor, " M"], Int[Tensor, " M"]]:
    """Optimal injective map from the 2D instance ids of ONE image to surrogate ids, Eq. 6.

    Maximises ``sum_h mean_{r in R_h} probs_r(j(h))`` over injective ``j`` (scipy ``linear_sum_assignment`` on a
    detached CPU copy of the ``M x K`` cost matrix ``-mean probability``). Ids ``<= 0`` (no instance / stuff / void)
    are ignored.

    If there are more instances than surrogate ids (``M > K``), only the ``K`` instances with the most rays are
    assigned (ties: smaller id first); the others are left out of the result and hence unsupervised.

    Returns:
        ``(ids, surrogate)``: the assigned 2D instance ids in ascending order and their surrogate ids (both int64 on
        the device of ``instance_ids``). Empty when there is no instance.
    """
    _check_rays(probs, ("instance_ids", instance_ids))
    ids_device = instance_ids.device
    empty = torch.zeros(0, dtype=torch.long, device=ids_device)
    num_surrogates = probs.shape[1]
    labelled = instance_ids > 0
    if num_surrogates == 0 or not bool(labelled.any()):
        return empty, empty.clone()

    p = _as_probs(probs.detach(), from_logits)[labelled.to(probs.device)]
    uniq, inverse, counts = torch.unique(instance_ids[labelled].long(), return_inverse=True, return_counts=True)
    inverse = inverse.to(p.device)
    sums = torch.zeros(uniq.shape[0], num_surrogates, dtype=p.dtype, device=p.device).index_add_(0, inverse, p)
    mean = sums / counts.to(device=p.device, dtype=p.dtype).unsqueeze(-1)

    rows = torch.arange(uniq.shape[0], device=ids_device)
    if uniq.shape[0] > num_surrogates:
        # keep the K largest instances; stable sort on ascending ids breaks count ties towards smaller ids
        order = torch.sort(counts, descending=True, stable=True).indices[:num_surrogates]
        rows = torch.sort(order).values

    cost = -mean[rows.to(p.device)].double().cpu().numpy()
    cost = np.nan_to_num(cost, nan=0.0, posinf=0.0, neginf=0.0)
    row_ind, col_ind = linear_sum_assignment(cost)  # row_ind is returned sorted
    ids = uniq[rows[torch.as_tensor(row_ind, dtype=torch.long, device=ids_device)]]
    surrogate = torch.as_tensor(col_ind, dtype=torch.long, device=ids_device)
    return ids, surrogate


@torch.no_grad()
def instance_targets(
    probs: Float[Tensor, "N K"],
    instance_ids: Int[Tensor, " N"],
    from_logits: bool = False,
) -> Int[Tensor, " N"]:
    """Per-ray surrogate-id target ``Pi*(h_r)`` from :func:`hungarian_assignment`; -1 where the ray is not supervised."""
    ids, surrogate = hungarian_assignment(probs, instance_ids, from_logits=from_logits)
    target = torch.full(instance_ids.shape, -1, dtype=torch.long, device=instance_ids.device)
    if ids.numel() == 0:
        return target
    flat = instance_ids.long()
    pos = torch.searchsorted(ids, flat).clamp(max=ids.numel() - 1)
    hit = (ids[pos] == flat) & (flat > 0)
    return torch.where(hit, surrogate[pos], target)


def instance_loss(
    probs: Float[Tensor, "N K"],
    instance_ids: Int[Tensor, " N"],
    confidence: Float[Tensor, " N"],
    from_logits: bool = False,
    eps: float = 1e-8,
) -> Tensor:
    """Instance loss, Eq. 5: ``-(1/|R|) sum_r w_r log probs_r(Pi*(h_r))`` for the rays of ONE image.

    ``R`` = rays with a 2D instance (id > 0) whose instance got a surrogate id (all of them unless ``M > K``, see
    :func:`hungarian_assignment`); ``|R|`` is their count. The assignment is a constant; gradients flow into ``probs``.
    """
    _check_rays(probs, ("instance_ids", instance_ids), ("confidence", confidence))
    target = instance_targets(probs, instance_ids, from_logits=from_logits).to(probs.device)
    nll = -_gather_log_prob(probs, target, from_logits, eps)
    return _masked_weighted_mean(nll, confidence, target >= 0)


@torch.no_grad()
def segment_majority_class(
    probs: Float[Tensor, "N C"],
    segment_ids: Int[Tensor, " N"],
    confidence: Float[Tensor, " N"],
    from_logits: bool = False,
) -> Int[Tensor, " N"]:
    """Per-ray target ``K_i = argmax_k sum_{r in R_i} w_r probs_r(k)`` of the ray's segment ``i``; -1 if segment < 0.

    Segment ids need not be compact. Argmax ties resolve to the smallest class index.
    """
    _check_rays(probs, ("segment_ids", segment_ids), ("confidence", confidence))
    seg = segment_ids.to(probs.device).long()
    target = torch.full(seg.shape, -1, dtype=torch.long, device=probs.device)
    keep = seg >= 0
    if probs.shape[1] == 0 or not bool(keep.any()):
        return target
    p = _as_probs(probs.detach(), from_logits)[keep]
    w = confidence.detach().to(dtype=p.dtype, device=p.device)[keep]
    uniq, inverse = torch.unique(seg[keep], return_inverse=True)
    scores = torch.zeros(uniq.shape[0], p.shape[1], dtype=p.dtype, device=p.device)
    scores.index_add_(0, inverse, w.unsqueeze(-1) * p)
    target[keep] = scores.argmax(dim=-1)[inverse]
    return target


def segment_consistency_loss(
    probs: Float[Tensor, "N C"],
    segment_ids: Int[Tensor, " N"],
    confidence: Float[Tensor, " N"],
    from_logits: bool = False,
    eps: float = 1e-8,
    batch_rays: Optional[Bool[Tensor, " N"]] = None,
) -> Tensor:
    """Segment consistency loss, Eq. 7: ``-(1/|R|) sum_r w_r log probs_r(K_seg(r))`` for the rays of ONE image.

    ``K_i`` comes from :func:`segment_majority_class` (no gradient). The sum runs over rays with ``segment_ids >= 0``;
    ``R`` (the normaliser) is ``batch_rays`` when given (e.g. every labelled ray while only thing segments are
    made consistent, so the loss keeps the paper's scale), else the same rays as the sum.
    """
    _check_rays(probs, ("segment_ids", segment_ids), ("confidence", confidence))
    target = segment_majority_class(probs, segment_ids, confidence, from_logits=from_logits)
    nll = -_gather_log_prob(probs, target, from_logits, eps)
    in_segment = target >= 0
    loss = _masked_weighted_mean(nll, confidence, in_segment)
    if batch_rays is None:
        return loss
    return loss * in_segment.sum().clamp(min=1) / batch_rays.to(in_segment.device).sum().clamp(min=1)


def panoptic_segment_ids(
    semantics: Int[Tensor, " N"],
    instance_ids: Int[Tensor, " N"],
    thing_mask: Bool[Tensor, " C"],
    void_id: int,
    stuff: bool = True,
) -> Int[Tensor, " N"]:
    """Compact panoptic segment ids (0..m-1) for the consistency loss; -1 = ignore.

    * thing pixel with instance ``h > 0``  -> one segment per instance id ``h``;
    * stuff pixel                          -> one segment per stuff class (its instance id is ignored); -1 when
      ``stuff`` is False;
    * void (``== void_id`` or outside ``[0, C)``) and thing pixels without an instance (``h <= 0``) -> -1.
    """
    if semantics.shape != instance_ids.shape:
        raise ValueError(f"semantics {tuple(semantics.shape)} and instance_ids {tuple(instance_ids.shape)} differ")
    sem = semantics.long()
    inst = instance_ids.long().to(sem.device)
    things = thing_mask.to(device=sem.device, dtype=torch.bool)
    num_classes = things.shape[0]
    out = torch.full_like(sem, -1)
    if num_classes == 0:
        return out
    in_range = (sem != void_id) & (sem >= 0) & (sem < num_classes)
    is_thing = in_range & things[sem.clamp(0, num_classes - 1)]
    is_stuff = in_range & ~is_thing
    thing_seg = is_thing & (inst > 0)
    # stuff class c -> key c, thing instance h -> key C + h: disjoint key ranges
    key = torch.where(thing_seg, inst + num_classes, sem)
    keep = thing_seg | is_stuff if stuff else thing_seg
    if bool(keep.any()):
        out[keep] = torch.unique(key[keep], return_inverse=True)[1]
    return out
