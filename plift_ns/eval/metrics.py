"""Panoptic, semantic and photometric metrics for evaluating plift-ns renders (numpy only, no model needed).

Conventions (shared by every function here)
-------------------------------------------
* A frame is given as four integer maps of one shape: predicted class ids, predicted instance ids, ground-truth
  class ids, ground-truth instance ids. Class ids are ``0..C-1`` or void: the class set's ``void_id`` (255 in the
  data contract) and, as in :func:`plift_ns.data.label_io.read_semantics`, ``-1``. Any other class id is a
  :class:`~plift_ns.errors.PliftDataError`, as are shape mismatches and negative thing instance ids.
* Segments are ``(class, instance)`` pairs. A stuff pixel's instance id is ignored (forced to 0), so every stuff class
  is one segment per frame. Thing pixels keep their instance id; thing pixels with instance id 0 form the segment
  ``(class, 0)`` like any other instance (this is what torchmetrics and the official Panoptic Lifting code do).
* Void: ground-truth void pixels are not part of any GT segment. They are removed from a predicted segment's area in
  the IoU (``union = |p \\ void_gt| + |g| - |p & g|``), and an unmatched predicted segment whose area lies more than
  50% in GT void is ignored instead of counted as a false positive. Predicted void pixels are not a segment; by
  default (COCO ``panopticapi`` behaviour) they are simply part of the GT segment's area and unmatched GT segments are
  always false negatives. With ``ignore_pred_void=True`` the void rule is applied symmetrically, as torchmetrics and
  the official Panoptic Lifting code (``allow_unknown_preds_category=True``) do: predicted-void pixels are removed
  from the GT segment's area in the IoU and an unmatched GT segment lying more than 50% in predicted void is not a
  false negative. The two modes agree whenever the prediction has no void pixels.
* Matching: a predicted and a GT segment of the same class match when IoU > 0.5 strictly (decided in exact integer
  arithmetic, ``2 * intersection > union``); such matches are unique.
* Per class ``c``: ``PQ_c = sum IoU(TP) / (TP + FP/2 + FN/2)``, ``SQ_c = sum IoU(TP) / TP`` (0 without TP),
  ``RQ_c = TP / (TP + FP/2 + FN/2)``. Averages (``PQ``/``SQ``/``RQ`` and their ``_th`` / ``_st`` thing / stuff
  breakdowns) are means over the classes that appear, i.e. with ``TP + FP + FN > 0`` (torchmetrics' rule: classes
  with a non-zero denominator); ``nan`` when no class of that kind appears.
* Standard PQ over many frames accumulates per-class IoU sums / TP / FP / FN over all frames (segments are matched
  within a frame only), then computes the per-class values and averages (COCO panoptic accumulation).
  PQ^scene (Panoptic Lifting, Sec. 4) is standard PQ on all test frames of a scene tiled into one image: a segment is
  the union over all views of the pixels with that ``(class, instance)``, so instance ids must agree across views.
  It is computed from per-frame (pred segment, GT segment, pixel count) tables, never from a tiled image.
* mIoU: one confusion matrix over all pixels whose GT is not void; a predicted-void pixel counts as a wrong
  prediction (a false negative of the GT class, a false positive of no class). ``IoU_c = TP / (TP + FP + FN)``,
  averaged over the classes with a non-zero union (present in GT or predicted on non-void GT pixels), like the
  official code's ``nanmean``. Pixel accuracy = correct pixels / non-void GT pixels.
* All metric values are fractions in ``[0, 1]`` (PSNR in dB); callers format percentages.
* ``robust_threshold`` (default 0 = off) reproduces the official code's class filtering: 0.005 drops from the PQ
  averages every class that covers a non-zero fraction below it of the (non-void GT) pixels in the prediction or in
  the GT, and from the mIoU average every class below it in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from plift_ns.data.classes import ClassSet
from plift_ns.errors import PliftDataError

VOID_KEY = -1  # segment key of void pixels
_INST_BITS = 32  # global segment key = class << 32 | instance
_INST_LIMIT = 1 << _INST_BITS

ClassesLike = Union[ClassSet, Sequence[bool], np.ndarray]
Frame = Tuple[Any, Any, Any, Any]  # (pred_sem, pred_inst, gt_sem, gt_inst)


# ----------------------------------------------------------------------------------------------------------------------
# class handling
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassInfo:
    """The parts of a class set the metrics need: thing flags, names and the void id."""

    thing_mask: np.ndarray  # (C,) bool
    names: Tuple[str, ...]
    void_id: int = 255

    @property
    def num_classes(self) -> int:
        return int(self.thing_mask.shape[0])


def resolve_classes(classes: Union[ClassesLike, ClassInfo], void_id: int = 255) -> ClassInfo:
    """A :class:`ClassInfo` from a :class:`ClassSet` or a boolean thing mask of length C (then ``void_id`` applies)."""
    if isinstance(classes, ClassInfo):
        return classes
    if isinstance(classes, ClassSet):
        return ClassInfo(classes.thing_mask(), tuple(classes.names), int(classes.void_id))
    mask = np.asarray(classes, dtype=bool).reshape(-1)
    if mask.size == 0:
        raise PliftDataError("the thing mask is empty (need one flag per class)")
    if 0 <= void_id < mask.size:
        raise PliftDataError(f"void id {void_id} collides with class {void_id}")
    return ClassInfo(mask, tuple(f"class_{i}" for i in range(mask.size)), int(void_id))


def _label(frame: Optional[Union[int, str]], name: Optional[Union[str, Path]] = None) -> str:
    parts = []
    if frame is not None:
        parts.append(f"frame {frame}")
    if name is not None:
        parts.append(f"({name})" if parts else str(name))
    return " ".join(parts) + ": " if parts else ""


def _as_int_array(x: Any, what: str, where: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise PliftDataError(f"{where}{what} must be an integer map, got dtype {arr.dtype}")
    return arr


def _check_shapes(arrays: Sequence[Tuple[str, np.ndarray]], where: str) -> None:
    first_name, first = arrays[0]
    for name, arr in arrays[1:]:
        if arr.shape != first.shape:
            raise PliftDataError(f"{where}{name} shape {arr.shape} != {first_name} shape {first.shape}")


def _clean_classes(sem: np.ndarray, info: ClassInfo, what: str, where: str) -> np.ndarray:
    """Flat int64 class ids with void (void_id or -1) mapped to C; bad ids raise."""
    c = info.num_classes
    sem = sem.reshape(-1).astype(np.int64, copy=False)
    if sem.size == 0:
        return sem
    lo, hi = int(sem.min()), int(sem.max())
    if lo >= 0 and hi < c:
        return sem
    void = (sem == info.void_id) | (sem == -1)
    bad = ~void & ((sem < 0) | (sem >= c))
    if bad.any():
        values = np.unique(sem[bad])
        shown = ", ".join(str(v) for v in values[:8]) + (", ..." if values.size > 8 else "")
        raise PliftDataError(
            f"{where}{what} has class ids outside 0..{c - 1} that are not void ({info.void_id}): {shown}"
        )
    return np.where(void, c, sem)


def _clean_instances(inst: np.ndarray, cls: np.ndarray, info: ClassInfo, what: str, where: str) -> np.ndarray:
    """Flat int64 instance ids, forced to 0 on stuff and void pixels; bad thing ids raise."""
    is_thing = np.append(info.thing_mask, False)[cls]
    inst = np.where(is_thing, inst.reshape(-1).astype(np.int64, copy=False), 0)
    if inst.size and (int(inst.min()) < 0 or int(inst.max()) >= _INST_LIMIT):
        raise PliftDataError(f"{where}{what} has thing instance ids outside 0..{_INST_LIMIT - 1}")
    return inst


# ----------------------------------------------------------------------------------------------------------------------
# pair tables: (pred segment key, gt segment key, pixel count) for every co-occurring pair
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class PairTable:
    """Pixel counts of every (predicted segment, GT segment) pair that co-occurs; keys are ``class << 32 | inst``
    (``VOID_KEY`` for void). Tables of several frames can be concatenated and re-aggregated (PQ^scene)."""

    pred: np.ndarray  # (K,) int64
    gt: np.ndarray  # (K,) int64
    count: np.ndarray  # (K,) int64

    @staticmethod
    def concatenate(tables: Sequence["PairTable"]) -> "PairTable":
        if not tables:
            empty = np.zeros(0, np.int64)
            return PairTable(empty, empty.copy(), empty.copy())
        pred = np.concatenate([t.pred for t in tables])
        gt = np.concatenate([t.gt for t in tables])
        count = np.concatenate([t.count for t in tables])
        return PairTable(pred, gt, count).aggregate()

    def aggregate(self) -> "PairTable":
        """Sum the counts of repeated (pred, gt) pairs."""
        if self.pred.size == 0:
            return self
        pu, pinv = np.unique(self.pred, return_inverse=True)
        gu, ginv = np.unique(self.gt, return_inverse=True)
        pair = pinv.astype(np.int64) * gu.size + ginv
        uniq, inv = np.unique(pair, return_inverse=True)
        count = np.bincount(inv, weights=self.count, minlength=uniq.size)
        return PairTable(pu[uniq // gu.size], gu[uniq % gu.size], np.rint(count).astype(np.int64))


def _dense_limit(n: int) -> int:
    return max(4 * n, 1 << 20)


def _unique_inverse(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for non-negative ints, via bincount when the range is small."""
    if values.size == 0:
        return values, values.astype(np.int64)
    top = int(values.max()) + 1
    if top <= _dense_limit(values.size):
        present = np.bincount(values, minlength=top) > 0
        uniq = np.flatnonzero(present)
        lut = np.zeros(top, dtype=np.int64)
        lut[uniq] = np.arange(uniq.size)
        return uniq, lut[values]
    uniq, inv = np.unique(values, return_inverse=True)
    return uniq, inv.reshape(-1)


def _segment_index(cls: np.ndarray, inst: np.ndarray, num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per-pixel index into the frame's segment list, and the segments' global keys."""
    k = int(inst.max()) + 1 if inst.size else 1
    local = cls * k + inst
    uniq, idx = _unique_inverse(local)
    ucls = uniq // k
    keys = (ucls << _INST_BITS) | (uniq % k)
    keys[ucls == num_classes] = VOID_KEY
    return idx, keys


def _pair_table(p_cls: np.ndarray, p_inst: np.ndarray, g_cls: np.ndarray, g_inst: np.ndarray, c: int) -> PairTable:
    p_idx, p_keys = _segment_index(p_cls, p_inst, c)
    g_idx, g_keys = _segment_index(g_cls, g_inst, c)
    ng = g_keys.size
    pair = p_idx * ng + g_idx
    if p_keys.size * ng <= _dense_limit(pair.size):
        counts = np.bincount(pair, minlength=p_keys.size * ng)
        nz = np.flatnonzero(counts)
        cnt = counts[nz]
    else:
        nz, cnt = np.unique(pair, return_counts=True)
    return PairTable(p_keys[nz // ng], g_keys[nz % ng], cnt.astype(np.int64))


def frame_pair_table(
    pred_sem: Any,
    pred_inst: Any,
    gt_sem: Any,
    gt_inst: Any,
    classes: Union[ClassesLike, ClassInfo],
    *,
    void_id: int = 255,
    frame: Optional[Union[int, str]] = None,
    name: Optional[Union[str, Path]] = None,
) -> PairTable:
    """Validate one frame and tabulate its (pred segment, GT segment) pixel counts."""
    info = resolve_classes(classes, void_id)
    where = _label(frame, name)
    ps = _as_int_array(pred_sem, "pred semantics", where)
    pi = _as_int_array(pred_inst, "pred instances", where)
    gs = _as_int_array(gt_sem, "gt semantics", where)
    gi = _as_int_array(gt_inst, "gt instances", where)
    _check_shapes([("gt semantics", gs), ("pred semantics", ps), ("pred instances", pi), ("gt instances", gi)], where)
    p_cls = _clean_classes(ps, info, "pred semantics", where)
    g_cls = _clean_classes(gs, info, "gt semantics", where)
    p_inst = _clean_instances(pi, p_cls, info, "pred instances", where)
    g_inst = _clean_instances(gi, g_cls, info, "gt instances", where)
    return _pair_table(p_cls, p_inst, g_cls, g_inst, info.num_classes)


# ----------------------------------------------------------------------------------------------------------------------
# panoptic quality
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class PQStats:
    """Per-class accumulators: IoU sum over true positives, TP, FP and FN counts (each shape (C,))."""

    iou_sum: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int) -> "PQStats":
        z = np.zeros(num_classes, dtype=np.int64)
        return cls(np.zeros(num_classes, dtype=np.float64), z, z.copy(), z.copy())

    def __add__(self, other: "PQStats") -> "PQStats":
        return PQStats(self.iou_sum + other.iou_sum, self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def _key_class(keys: np.ndarray) -> np.ndarray:
    return keys >> _INST_BITS


def pq_stats_from_pairs(table: PairTable, num_classes: int, *, ignore_pred_void: bool = False) -> PQStats:
    """Match segments of one pair table (one frame, or a whole scene) and count per-class TP / FP / FN."""
    stats = PQStats.zeros(num_classes)
    if table.pred.size == 0:
        return stats
    pk, gk, cnt = table.pred, table.gt, table.count
    pu, pinv = np.unique(pk, return_inverse=True)
    gu, ginv = np.unique(gk, return_inverse=True)
    pinv, ginv = pinv.reshape(-1), ginv.reshape(-1)
    w = cnt.astype(np.float64)
    p_area = np.rint(np.bincount(pinv, weights=w, minlength=pu.size)).astype(np.int64)
    g_area = np.rint(np.bincount(ginv, weights=w, minlength=gu.size)).astype(np.int64)
    gt_void = gk == VOID_KEY
    pred_void = pk == VOID_KEY
    p_in_void = np.rint(np.bincount(pinv[gt_void], weights=w[gt_void], minlength=pu.size)).astype(np.int64)
    g_in_void = np.rint(np.bincount(ginv[pred_void], weights=w[pred_void], minlength=gu.size)).astype(np.int64)

    cand = ~gt_void & ~pred_void & (_key_class(pk) == _key_class(gk))
    ci, cg, inter = pinv[cand], ginv[cand], cnt[cand]
    union = p_area[ci] - p_in_void[ci] + g_area[cg] - inter
    if ignore_pred_void:
        union = union - g_in_void[cg]
    match = 2 * inter > union
    mi, mg = ci[match], cg[match]
    iou = inter[match] / union[match]
    m_cls = _key_class(gu[mg])
    stats.tp += np.bincount(m_cls, minlength=num_classes)
    stats.iou_sum += np.bincount(m_cls, weights=iou, minlength=num_classes)

    p_matched = np.zeros(pu.size, dtype=bool)
    p_matched[mi] = True
    g_matched = np.zeros(gu.size, dtype=bool)
    g_matched[mg] = True
    fp = (pu != VOID_KEY) & ~p_matched & (2 * p_in_void <= p_area)
    fn = (gu != VOID_KEY) & ~g_matched
    if ignore_pred_void:
        fn &= 2 * g_in_void <= g_area
    stats.fp += np.bincount(_key_class(pu[fp]), minlength=num_classes)
    stats.fn += np.bincount(_key_class(gu[fn]), minlength=num_classes)
    return stats


def _mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def summarize_pq(
    stats: PQStats, classes: Union[ClassesLike, ClassInfo], *, include: Optional[np.ndarray] = None, void_id: int = 255
) -> Dict[str, Any]:
    """PQ / SQ / RQ (all, ``_th`` things, ``_st`` stuff) as fractions, plus a per-class table.

    ``include``: optional (C,) bool mask of classes allowed into the averages (see ``robust_threshold``).
    The table lists every class that appears (TP + FP + FN > 0): id, name, isthing, PQ, SQ, RQ, TP, FP, FN,
    in_average.
    """
    info = resolve_classes(classes, void_id)
    tp = stats.tp.astype(np.float64)
    denom = tp + 0.5 * stats.fp + 0.5 * stats.fn
    safe = np.where(denom > 0, denom, 1.0)
    pq = np.where(denom > 0, stats.iou_sum / safe, 0.0)
    sq = np.where(tp > 0, stats.iou_sum / np.where(tp > 0, tp, 1.0), 0.0)
    rq = np.where(denom > 0, tp / safe, 0.0)
    present = (stats.tp + stats.fp + stats.fn) > 0
    used = present if include is None else present & np.asarray(include, dtype=bool)
    things = info.thing_mask
    out: Dict[str, Any] = {}
    for suffix, mask in (("", used), ("_th", used & things), ("_st", used & ~things)):
        out[f"PQ{suffix}"] = _mean(pq, mask)
        out[f"SQ{suffix}"] = _mean(sq, mask)
        out[f"RQ{suffix}"] = _mean(rq, mask)
    out["num_classes"] = int(used.sum())
    out["per_class"] = [
        {
            "id": int(c),
            "name": info.names[c],
            "isthing": bool(things[c]),
            "PQ": float(pq[c]),
            "SQ": float(sq[c]),
            "RQ": float(rq[c]),
            "TP": int(stats.tp[c]),
            "FP": int(stats.fp[c]),
            "FN": int(stats.fn[c]),
            "in_average": bool(used[c]),
        }
        for c in np.flatnonzero(present)
    ]
    return out


def panoptic_quality(
    frames: Iterable[Frame],
    classes: Union[ClassesLike, ClassInfo],
    *,
    scene: bool = False,
    void_id: int = 255,
    ignore_pred_void: bool = False,
) -> Dict[str, Any]:
    """Standard PQ over frames: segments matched per frame, per-class stats accumulated over frames.

    ``scene=True``: PQ^scene, all frames tiled into one image (instance ids must agree across views).
    ``frames``: iterable of ``(pred_sem, pred_inst, gt_sem, gt_inst)``. Returns :func:`summarize_pq`'s dict.
    """
    info = resolve_classes(classes, void_id)
    tables = [frame_pair_table(ps, pi, gs, gi, info, frame=i) for i, (ps, pi, gs, gi) in enumerate(frames)]
    if scene:
        stats = pq_stats_from_pairs(PairTable.concatenate(tables), info.num_classes, ignore_pred_void=ignore_pred_void)
    else:
        stats = PQStats.zeros(info.num_classes)
        for table in tables:
            stats = stats + pq_stats_from_pairs(table, info.num_classes, ignore_pred_void=ignore_pred_void)
    return summarize_pq(stats, info)


def panoptic_quality_scene(frames: Iterable[Frame], classes: Union[ClassesLike, ClassInfo], **options: Any) -> Dict[str, Any]:
    """PQ^scene: :func:`panoptic_quality` with ``scene=True`` (same keyword options, same keys)."""
    return panoptic_quality(frames, classes, scene=True, **options)


# ----------------------------------------------------------------------------------------------------------------------
# semantic metrics
# ----------------------------------------------------------------------------------------------------------------------


def confusion_from_pairs(table: PairTable, num_classes: int) -> np.ndarray:
    """(C, C+1) int64 confusion matrix (rows GT class, columns predicted class, last column predicted void) of the
    pixels whose GT is not void."""
    keep = table.gt != VOID_KEY
    g = _key_class(table.gt[keep])
    p = np.where(table.pred[keep] == VOID_KEY, num_classes, _key_class(table.pred[keep]))
    flat = np.bincount(
        g * (num_classes + 1) + p,
        weights=table.count[keep].astype(np.float64),
        minlength=num_classes * (num_classes + 1),
    )
    return np.rint(flat).astype(np.int64).reshape(num_classes, num_classes + 1)


def semantic_confusion(
    pred_sem: Any, gt_sem: Any, classes: Union[ClassesLike, ClassInfo], *, void_id: int = 255, frame: Any = None
) -> np.ndarray:
    """(C, C+1) confusion matrix of one frame (see :func:`confusion_from_pairs`)."""
    info = resolve_classes(classes, void_id)
    where = _label(frame)
    ps = _as_int_array(pred_sem, "pred semantics", where)
    gs = _as_int_array(gt_sem, "gt semantics", where)
    _check_shapes([("gt semantics", gs), ("pred semantics", ps)], where)
    c = info.num_classes
    p = _clean_classes(ps, info, "pred semantics", where)
    g = _clean_classes(gs, info, "gt semantics", where)
    keep = g < c
    flat = np.bincount(g[keep] * (c + 1) + p[keep], minlength=c * (c + 1))
    return flat.astype(np.int64).reshape(c, c + 1)


def miou_from_confusion(
    confusion: np.ndarray,
    classes: Union[ClassesLike, ClassInfo],
    *,
    include: Optional[np.ndarray] = None,
    void_id: int = 255,
) -> Dict[str, Any]:
    """mIoU and pixel accuracy from a (C, C+1) confusion matrix; per-class table of classes with a non-zero union."""
    info = resolve_classes(classes, void_id)
    c = info.num_classes
    conf = np.asarray(confusion, dtype=np.int64)
    if conf.shape != (c, c + 1):
        raise PliftDataError(f"confusion matrix must have shape ({c}, {c + 1}), got {conf.shape}")
    tp = np.diag(conf[:, :c])
    fn = conf.sum(axis=1) - tp  # includes pixels predicted void
    fp = conf[:, :c].sum(axis=0) - tp
    union = tp + fp + fn
    iou = np.where(union > 0, tp / np.where(union > 0, union, 1), 0.0)
    present = union > 0
    used = present if include is None else present & np.asarray(include, dtype=bool)
    total = int(conf.sum())
    return {
        "mIoU": _mean(iou, used),
        "pixel_acc": float(tp.sum() / total) if total else float("nan"),
        "num_classes": int(used.sum()),
        "per_class": [
            {
                "id": int(k),
                "name": info.names[k],
                "isthing": bool(info.thing_mask[k]),
                "IoU": float(iou[k]),
                "TP": int(tp[k]),
                "FP": int(fp[k]),
                "FN": int(fn[k]),
                "in_average": bool(used[k]),
            }
            for k in np.flatnonzero(present)
        ],
    }


def mean_iou(
    frames: Iterable[Tuple[Any, Any]], classes: Union[ClassesLike, ClassInfo], *, void_id: int = 255
) -> Dict[str, Any]:
    """mIoU / pixel accuracy over ``(pred_sem, gt_sem)`` frames with one confusion matrix."""
    info = resolve_classes(classes, void_id)
    conf = np.zeros((info.num_classes, info.num_classes + 1), dtype=np.int64)
    for i, (ps, gs) in enumerate(frames):
        conf += semantic_confusion(ps, gs, info, frame=i)
    return miou_from_confusion(conf, info)


def robust_class_masks(confusion: np.ndarray, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """Classes kept by the official code's robustness filter: (for PQ averages, for the mIoU average).

    Fractions are of the non-void-GT pixels. PQ drops a class present below ``threshold`` in the prediction or in the
    GT; mIoU drops a class below ``threshold`` in both.
    """
    conf = np.asarray(confusion, dtype=np.float64)
    c = conf.shape[0]
    total = conf.sum()
    if threshold <= 0 or total == 0:
        ones = np.ones(c, dtype=bool)
        return ones, ones.copy()
    gt_frac = conf.sum(axis=1) / total
    pred_frac = conf[:, :c].sum(axis=0) / total
    rare_gt = (gt_frac > 0) & (gt_frac < threshold)
    rare_pred = (pred_frac > 0) & (pred_frac < threshold)
    pq_keep = ~(rare_gt | rare_pred)
    miou_keep = ~((gt_frac < threshold) & (pred_frac < threshold))
    return pq_keep, miou_keep


# ----------------------------------------------------------------------------------------------------------------------
# photometric
# ----------------------------------------------------------------------------------------------------------------------


def _as_float_image(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64, copy=False)


def psnr(pred: Any, gt: Any, *, mask: Any = None, max_val: float = 1.0, frame: Any = None) -> float:
    """PSNR in dB, ``10 log10(max_val^2 / MSE)`` over all pixels and channels (or the pixels where ``mask``).

    Float images are taken as [0, 1]; uint8 images are divided by 255. Identical images give ``inf``.
    """
    p, g = _as_float_image(pred), _as_float_image(gt)
    if p.shape != g.shape:
        raise PliftDataError(f"{_label(frame)}pred image shape {p.shape} != gt image shape {g.shape}")
    diff2 = (p - g) ** 2
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != p.shape[: m.ndim]:
            raise PliftDataError(f"{_label(frame)}mask shape {m.shape} does not fit image shape {p.shape}")
        diff2 = diff2[m]
    if diff2.size == 0:
        return float("nan")
    mse = float(diff2.mean())
    return float("inf") if mse == 0 else float(10.0 * np.log10(max_val**2 / mse))


def mean_psnr(preds: Iterable[Any], gts: Iterable[Any], *, max_val: float = 1.0) -> float:
    """Mean of the per-view PSNRs (nerfstudio's convention)."""
    values = [psnr(p, g, max_val=max_val, frame=i) for i, (p, g) in enumerate(zip(preds, gts, strict=True))]
    return float(np.mean(values)) if values else float("nan")


# ----------------------------------------------------------------------------------------------------------------------
# accumulator
# ----------------------------------------------------------------------------------------------------------------------


class PanopticEvaluator:
    """Accumulate test frames one by one and compute all metrics at the end.

    Example::

        ev = PanopticEvaluator(class_set)
        for frame in frames:
            ev.add_frame(pred_sem, pred_inst, gt_sem, gt_inst, pred_rgb, gt_rgb, name="frame_00012.png")
        results = ev.compute()   # fractions in [0, 1]; PSNR in dB

    ``compute()`` keys: ``PQ_scene, SQ_scene, RQ_scene`` (+ ``_th``, ``_st``), ``PQ, SQ, RQ`` (+ ``_th``, ``_st``;
    per-frame matching, accumulated), ``mIoU``, ``pixel_acc``, ``PSNR`` (only when RGB was given; mean over the frames
    that had it), ``num_frames``, ``per_class`` (``{"PQ_scene": rows, "PQ": rows, "IoU": rows}``) and ``per_frame``
    (rows ``{"index", "name", "PQ", "SQ", "RQ", "PSNR"?}``). Memory: one small pair table per frame, no label maps.
    """

    def __init__(
        self,
        classes: Union[ClassesLike, ClassInfo],
        *,
        void_id: int = 255,
        ignore_pred_void: bool = False,
        robust_threshold: float = 0.0,
    ) -> None:
        self.info = resolve_classes(classes, void_id)
        self.ignore_pred_void = ignore_pred_void
        self.robust_threshold = float(robust_threshold)
        self.reset()

    def reset(self) -> None:
        c = self.info.num_classes
        self._tables: List[PairTable] = []
        self._frame_stats = PQStats.zeros(c)
        self._confusion = np.zeros((c, c + 1), dtype=np.int64)
        self._psnr: List[float] = []
        self._frames: List[Dict[str, Any]] = []

    @property
    def num_frames(self) -> int:
        return len(self._tables)

    def add_frame(
        self,
        pred_sem: Any,
        pred_inst: Any,
        gt_sem: Any,
        gt_inst: Any,
        pred_rgb: Any = None,
        gt_rgb: Any = None,
        name: Optional[Union[str, Path]] = None,
    ) -> Dict[str, Any]:
        """Add one frame; returns its own standard PQ / SQ / RQ (and PSNR) as a per-frame record."""
        index = len(self._tables)
        table = frame_pair_table(pred_sem, pred_inst, gt_sem, gt_inst, self.info, frame=index, name=name)
        record: Dict[str, Any] = {"index": index, "name": None if name is None else str(name)}
        if (pred_rgb is None) != (gt_rgb is None):
            raise PliftDataError(f"{_label(index, name)}give both pred_rgb and gt_rgb, or neither")
        if pred_rgb is not None:
            value = psnr(pred_rgb, gt_rgb, frame=f"{index}" + (f" ({name})" if name else ""))
            record["PSNR"] = value
        stats = pq_stats_from_pairs(table, self.info.num_classes, ignore_pred_void=self.ignore_pred_void)
        summary = summarize_pq(stats, self.info)
        record.update(PQ=summary["PQ"], SQ=summary["SQ"], RQ=summary["RQ"])
        # commit only after everything validated
        self._tables.append(table)
        self._frame_stats = self._frame_stats + stats
        self._confusion += confusion_from_pairs(table, self.info.num_classes)
        if "PSNR" in record:
            self._psnr.append(record["PSNR"])
        self._frames.append(record)
        return record

    def compute(self) -> Dict[str, Any]:
        if not self._tables:
            raise PliftDataError("no frames were added to the evaluator")
        pq_keep, miou_keep = robust_class_masks(self._confusion, self.robust_threshold)
        scene_stats = pq_stats_from_pairs(
            PairTable.concatenate(self._tables), self.info.num_classes, ignore_pred_void=self.ignore_pred_void
        )
        scene = summarize_pq(scene_stats, self.info, include=pq_keep)
        frame = summarize_pq(self._frame_stats, self.info, include=pq_keep)
        sem = miou_from_confusion(self._confusion, self.info, include=miou_keep)
        out: Dict[str, Any] = {}
        for suffix in ("", "_th", "_st"):
            for m in ("PQ", "SQ", "RQ"):
                out[f"{m}_scene{suffix}"] = scene[f"{m}{suffix}"]
        for suffix in ("", "_th", "_st"):
            for m in ("PQ", "SQ", "RQ"):
                out[f"{m}{suffix}"] = frame[f"{m}{suffix}"]
        out["mIoU"] = sem["mIoU"]
        out["pixel_acc"] = sem["pixel_acc"]
        if self._psnr:
            out["PSNR"] = float(np.mean(self._psnr))
        out["num_frames"] = self.num_frames
        out["per_class"] = {"PQ_scene": scene["per_class"], "PQ": frame["per_class"], "IoU": sem["per_class"]}
        out["per_frame"] = list(self._frames)
        return out
