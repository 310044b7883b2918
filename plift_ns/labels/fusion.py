"""Fusing candidate segments from all augmentations into one panoptic labelling with confidences (supp. A.2).

1. *Segment clustering*: graph over the N candidate segments with an edge where the soft-IoU
   ``sum(min(m_i, m_j)) / sum(max(m_i, m_j))`` is at least θ (0.5); connected components are the clusters.
2. *Cluster aggregation*: average the soft masks and the class distributions of each cluster.
3. *Panoptic fusion*: scale each cluster mask by its maximum class probability p*; every pixel takes the cluster with
   the largest scaled mask; its confidence is that value, its class distribution the cluster's (renormalised over the
   target classes), its class the cluster's arg-max class; thing clusters get instance ids 1, 2, ... (by area), stuff 0.

Void: a pixel whose best scaled mask is below ``void_threshold`` (default 0.1 — no cluster really claims it, e.g. a
50 % soft mask of a 20 %-likely class) is void: semantics -1 (written as the class set's void id), instance 0,
confidence 0; its probability is still the nearest cluster's distribution (uniform if there is none) so it sums to 1.

All class distributions here are *folded* to the target classes: (C + 1) columns, the last one void (see
:mod:`plift_ns.data.class_maps`). Everything runs on the tensors' device; only the graph goes through scipy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from plift_ns.labels.protocol import QueryPrediction


@dataclass
class FusionConfig:
    """Parameters of the TTA fusion."""

    theta: float = 0.5
    """Soft-IoU threshold for an edge between two candidate segments (paper: 0.5)."""
    void_threshold: float = 0.1
    """Pixels whose best scaled cluster mask (p* x mean soft mask) is below this are void with confidence 0."""
    min_score: float = 0.0
    """Candidate segments whose best target-class probability is below this are dropped before clustering."""
    mask_threshold: float = 0.5
    """Candidate segments whose soft mask never reaches this value (they cover no pixel) are dropped."""
    graph_max_side: int = 160
    """Soft-IoUs are computed on masks area-downsampled to at most this many pixels per side (0: full size)."""


@dataclass
class FusedLabels:
    """Per-pixel result of the fusion for one image."""

    probability: Tensor
    """(H, W, C) class distribution, sums to 1."""
    confidence: Tensor
    """(H, W) in [0, 1]; 0 on void pixels."""
    semantics: Tensor
    """(H, W) long class ids, -1 = void."""
    instance: Tensor
    """(H, W) long instance ids: 1.. for thing pixels (one per cluster), 0 for stuff and void."""
    cluster: Tensor
    """(H, W) long index of the winning cluster, -1 on void pixels."""
    num_clusters: int
    num_segments: int


def select_queries(folded: Tensor, masks: Tensor, config: FusionConfig) -> Tensor:
    """Boolean (Q,) of the candidates kept: most likely folded class is not void, score >= ``min_score``, and the
    soft mask reaches ``mask_threshold`` somewhere."""
    if folded.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool, device=folded.device)
    score = folded[:, :-1].max(dim=-1).values
    keep = (score > folded[:, -1]) & (score >= config.min_score)
    return keep & (masks.flatten(1).amax(dim=1) >= config.mask_threshold)


def _downsample(masks: Tensor, max_side: int) -> Tensor:
    h, w = masks.shape[-2:]
    if max_side <= 0 or max(h, w) <= max_side:
        return masks
    s = max_side / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    return F.interpolate(masks[None], size=size, mode="area")[0]


def soft_iou(masks: Tensor, chunk: int = 256) -> Tensor:
    """(N, N) soft-IoU of (N, P) soft masks: sum(min) / sum(max), via sum(min) = (S_i + S_j - L1) / 2 and
    sum(max) = (S_i + S_j + L1) / 2 with the pairwise L1 distance L1."""
    masks = masks.float()
    sums = masks.sum(dim=1)
    out = torch.empty((masks.shape[0], masks.shape[0]), device=masks.device)
    for start in range(0, masks.shape[0], chunk):
        part = masks[start : start + chunk]
        l1 = torch.cdist(part[None], masks[None], p=1)[0]
        total = sums[start : start + chunk, None] + sums[None]
        out[start : start + chunk] = (total - l1) / (total + l1).clamp_min(1e-8)
    return out.clamp(0.0, 1.0)


def cluster_segments(masks: Tensor, theta: float = 0.5, graph_max_side: int = 160) -> np.ndarray:
    """Cluster label (N,) per candidate mask (N, H, W): connected components of the soft-IoU >= θ graph."""
    n = int(masks.shape[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    iou = soft_iou(_downsample(masks.float(), graph_max_side).flatten(1))
    adjacency = csr_matrix((iou >= theta).cpu().numpy())
    _, labels = connected_components(adjacency, directed=False)
    return labels.astype(np.int64)


def aggregate_clusters(masks: Tensor, probs: Tensor, labels: np.ndarray) -> Tuple[Tensor, Tensor]:
    """Mean mask (K, H, W) and mean class distribution (K, C + 1) of every cluster."""
    lab = torch.as_tensor(labels, device=masks.device, dtype=torch.long)
    k = int(lab.max().item()) + 1 if lab.numel() else 0
    counts = torch.bincount(lab, minlength=k).clamp_min(1).float()
    cluster_masks = torch.zeros((k, *masks.shape[1:]), device=masks.device).index_add_(0, lab, masks.float())
    cluster_probs = torch.zeros((k, probs.shape[1]), device=probs.device).index_add_(0, lab, probs.float())
    return cluster_masks / counts[:, None, None], cluster_probs / counts[:, None]


def _best_cluster(scaled: Tensor, out_size: Tuple[int, int], chunk: int = 16) -> Tuple[Tensor, Tensor]:
    """Max and arg-max over clusters of the scaled masks, bilinearly resized to ``out_size`` a few clusters at a time."""
    best = torch.full(out_size, -1.0, device=scaled.device)
    owner = torch.zeros(out_size, dtype=torch.long, device=scaled.device)
    for start in range(0, scaled.shape[0], chunk):
        part = scaled[start : start + chunk]
        if tuple(part.shape[-2:]) != tuple(out_size):
            part = F.interpolate(part[None], size=out_size, mode="bilinear", align_corners=False)[0]
        value, index = part.max(dim=0)
        better = value > best
        best = torch.where(better, value, best)
        owner = torch.where(better, index + start, owner)
    return best.clamp(0.0, 1.0), owner


def fuse_clusters(
    cluster_masks: Tensor,
    cluster_probs: Tensor,
    isthing: Sequence[bool],
    void_threshold: float = 0.1,
    out_size: Optional[Tuple[int, int]] = None,
    num_segments: int = 0,
) -> FusedLabels:
    """Panoptic fusion of cluster masks (K, h, w) and folded distributions (K, C + 1) at ``out_size`` (default (h, w))."""
    device = cluster_masks.device
    num_classes = int(cluster_probs.shape[1]) - 1
    size = tuple(out_size) if out_size is not None else tuple(cluster_masks.shape[-2:])
    k = int(cluster_masks.shape[0])
    if k == 0:
        return FusedLabels(
            probability=torch.full((*size, num_classes), 1.0 / num_classes, device=device),
            confidence=torch.zeros(size, device=device),
            semantics=torch.full(size, -1, dtype=torch.long, device=device),
            instance=torch.zeros(size, dtype=torch.long, device=device),
            cluster=torch.full(size, -1, dtype=torch.long, device=device),
            num_clusters=0,
            num_segments=num_segments,
        )
    real = cluster_probs[:, :num_classes]
    p_star, c_star = real.max(dim=-1)
    best, owner = _best_cluster(cluster_masks * p_star[:, None, None], size)  # type: ignore[arg-type]
    void = best < void_threshold
    dist = real / real.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    thing = torch.as_tensor(list(isthing), dtype=torch.bool, device=device)[c_star]
    area = torch.bincount(owner[~void], minlength=k)
    ids = torch.zeros(k, dtype=torch.long, device=device)
    things = [int(i) for i in torch.argsort(area, descending=True, stable=True).tolist() if thing[i] and area[i] > 0]
    for n, i in enumerate(things):
        ids[i] = n + 1
    semantics = torch.where(void, torch.full_like(owner, -1), c_star[owner])
    return FusedLabels(
        probability=dist[owner],
        confidence=torch.where(void, torch.zeros_like(best), best),
        semantics=semantics,
        instance=torch.where(void, torch.zeros_like(owner), ids[owner]),
        cluster=torch.where(void, torch.full_like(owner, -1), owner),
        num_clusters=k,
        num_segments=num_segments,
    )


def fuse_predictions(
    predictions: Sequence[QueryPrediction],
    isthing: Sequence[bool],
    config: FusionConfig = FusionConfig(),
    out_size: Optional[Tuple[int, int]] = None,
) -> FusedLabels:
    """Cluster, aggregate and fuse the candidates of several (augmented, mapped-back, folded) predictions.

    Every prediction's ``class_probs`` must already be folded to the target classes (last column void) and its masks
    must share one (H, W) frame; ``out_size`` resizes the result (default: that frame).
    """
    if not predictions:
        raise ValueError("no predictions to fuse")
    num_cols = predictions[0].class_probs.shape[1]
    if num_cols - 1 != len(isthing):
        raise ValueError(f"predictions have {num_cols - 1} target classes (+ void) but isthing has {len(isthing)}")
    masks = torch.cat([p.mask_probs.float() for p in predictions], dim=0)
    probs = torch.cat([p.class_probs.float() for p in predictions], dim=0)
    if masks.shape[0] == 0:
        size = tuple(predictions[0].mask_probs.shape[-2:])
        empty = masks.new_zeros((0, *size))
        return fuse_clusters(empty, probs, isthing, config.void_threshold, out_size or size)  # type: ignore[arg-type]
    labels = cluster_segments(masks, config.theta, config.graph_max_side)
    cluster_masks, cluster_probs = aggregate_clusters(masks, probs, labels)
    return fuse_clusters(cluster_masks, cluster_probs, isthing, config.void_threshold, out_size, int(masks.shape[0]))
