"""Machine-label simulator: turns exact panoptic ground truth into what a 2D panoptic network would predict.

Per frame and GT segment (a thing instance, or all pixels of one stuff class) it applies, in order: whole-segment
class confusion, missed things, split things, merged same-class things, a smooth boundary displacement, random void
holes and a per-frame random renumbering of instance ids. It also produces Mask2Former-like peaked class
probabilities and a confidence map, and counts what it did so measured rates can be reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Dict, List, Tuple

import numpy as np
from scipy import ndimage

from plift_ns.data.classes import ClassSet
from plift_ns.errors import PliftDataError

#: Default symmetric confusable class pairs ("a:b"), by class name. Names missing from a class set are ignored.
DEFAULT_CONFUSABLE: Tuple[str, ...] = (
    "chair:sofa",
    "sofa:bed",
    "table:cabinet",
    "table:counter",
    "cabinet:counter",
    "cabinet:shelves",
    "cabinet:refrigerator",
    "door:wall",
    "window:curtain",
    "television:window",
    "lamp:otherprop",
    "sink:counter",
    "toilet:sink",
    "bag:otherprop",
    "person:otherprop",
)


@dataclass
class NoiseConfig:
    """Knobs of the machine-label simulator. Probabilities are per (frame, segment) unless stated otherwise.

    All confidences are kept >= 0.5 so that the labelled class is always the arg-max of the probabilities.
    """

    seed: int = 0
    """Seed of the label noise (combined with the scene seed)."""
    p_confuse: float = 0.1
    """Probability that a segment whose class has a confusable partner gets the partner's class (whole segment)."""
    confusable_pairs: Tuple[str, ...] = DEFAULT_CONFUSABLE
    """Symmetric confusable pairs written "classA:classB"."""
    p_miss: float = 0.05
    """Probability that a thing segment is missed (becomes void or is absorbed into the surrounding stuff class)."""
    miss_to_void: float = 0.5
    """Among missed segments, probability of becoming void rather than surrounding stuff."""
    p_split: float = 0.05
    """Probability that a thing segment is split in two instance ids by a random line."""
    p_merge: float = 0.1
    """Probability that a thing segment takes the id of another same-class segment in the frame (if there is one)."""
    p_void_hole: float = 0.05
    """Probability that an elliptic void blob is punched into a segment."""
    void_hole_radius: Tuple[float, float] = (0.03, 0.08)
    """Range of void blob radii as a fraction of min(H, W)."""
    boundary_jitter_px: float = 1.5
    """Standard deviation (pixels) of the smooth random displacement field that moves label boundaries; 0 = off."""
    boundary_jitter_scale_px: float = 12.0
    """Correlation length (pixels) of the displacement field."""
    renumber_instances: bool = True
    """Give every frame's instances fresh random ids (ids are not consistent across frames, like a 2D network)."""
    confidence_range: Tuple[float, float] = (0.85, 0.99)
    """Per-segment confidence range, also for wrongly classified segments."""
    p_low_confidence: float = 0.1
    """Probability that a segment gets a confidence from ``low_confidence_range`` instead."""
    low_confidence_range: Tuple[float, float] = (0.55, 0.8)
    """Confidence range of low-confidence segments."""
    boundary_confidence: float = 0.5
    """Confidence on label boundaries; it rises linearly to the segment's confidence over ``boundary_width_px``."""
    boundary_width_px: float = 2.0
    """Width of the low-confidence band along label boundaries (0 = off)."""
    tta_like: bool = False
    """Smoother, test-time-augmentation-like output: wrong segments get lower confidence and a distribution split
    between the wrong (labelled) class and the true class."""
    tta_wrong_confidence: Tuple[float, float] = (0.5, 0.7)
    """Confidence range of wrongly classified segments in ``tta_like`` mode."""
    tta_true_share: float = 0.8
    """In ``tta_like`` mode, share of the non-label mass put on the true class of wrong pixels."""

    @classmethod
    def clean(cls, seed: int = 0) -> "NoiseConfig":
        """No noise at all (instances are still renumbered per frame)."""
        return cls(seed=seed, p_confuse=0.0, p_miss=0.0, p_split=0.0, p_merge=0.0, p_void_hole=0.0,
                   boundary_jitter_px=0.0)

    def partners(self, class_set: ClassSet) -> Dict[int, List[int]]:
        """Confusable partner class ids for every class id of ``class_set`` that has some."""
        out: Dict[int, List[int]] = {}
        for pair in self.confusable_pairs:
            names = pair.split(":")
            if len(names) != 2:
                raise PliftDataError(f"confusable pair '{pair}' must be written 'classA:classB'")
            if not all(n in class_set.names for n in names):
                continue
            a, b = (class_set.index(n) for n in names)
            for x, y in ((a, b), (b, a)):
                if x != y and y not in out.setdefault(x, []):
                    out[x].append(y)
        return {k: v for k, v in out.items() if v}


@dataclass
class NoiseCounts:
    """What the simulator did, summed over frames (segment- and pixel-level counters)."""

    frames: int = 0
    segments: int = 0
    confusable_segments: int = 0
    confused: int = 0
    thing_segments: int = 0
    missed: int = 0
    split_candidates: int = 0
    split: int = 0
    merge_candidates: int = 0
    merged: int = 0
    void_holes: int = 0
    pixels: int = 0
    gt_labelled_pixels: int = 0
    class_error_pixels: int = 0
    labelled_pixels: int = 0
    labelled_error_pixels: int = 0
    void_pixels: int = 0

    def add(self, other: "NoiseCounts") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_json(self) -> Dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}

    def rates(self) -> Dict[str, float]:
        """Measured rates: segment-level event fractions and pixel-level label error / void fractions."""

        def div(a: int, b: int) -> float:
            return float(a) / b if b else 0.0

        return {
            "confused_segment_rate": div(self.confused, self.confusable_segments),
            "confused_segment_rate_all": div(self.confused, self.segments),
            "missed_segment_rate": div(self.missed, self.thing_segments),
            "split_segment_rate": div(self.split, self.split_candidates),
            "merged_segment_rate": div(self.merged, self.merge_candidates),
            "void_hole_rate": div(self.void_holes, self.segments),
            "pixel_class_error": div(self.class_error_pixels, self.gt_labelled_pixels),
            "pixel_class_error_labelled": div(self.labelled_error_pixels, self.labelled_pixels),
            "void_fraction": div(self.void_pixels, self.pixels),
        }


@dataclass
class MachineLabels:
    """Simulated network output for one frame."""

    semantics: np.ndarray  # (H, W) uint8, void_id where unlabelled
    instance: np.ndarray  # (H, W) uint16, per-frame ids, 0 for stuff / void
    probability: np.ndarray  # (H, W, C) float32, sums to 1
    confidence: np.ndarray  # (H, W) float32 in [0, 1], 0 on void
    counts: NoiseCounts = field(default_factory=NoiseCounts)


def _displacement_gather(h: int, w: int, sigma: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Flat source indices of a smooth random displacement (nearest-neighbour resampling) of an (h, w) image."""
    gh, gw = int(math.ceil(h / scale)) + 2, int(math.ceil(w / scale)) + 2
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    coords = np.stack([yy / scale + 0.5, xx / scale + 0.5])
    dy = ndimage.map_coordinates(rng.normal(0.0, sigma, (gh, gw)), coords, order=1, mode="nearest")
    dx = ndimage.map_coordinates(rng.normal(0.0, sigma, (gh, gw)), coords, order=1, mode="nearest")
    sy = np.clip(np.rint(yy + dy), 0, h - 1).astype(np.int64)
    sx = np.clip(np.rint(xx + dx), 0, w - 1).astype(np.int64)
    return (sy * w + sx).reshape(-1)


def _boundaries(sem: np.ndarray, inst: np.ndarray) -> np.ndarray:
    """Pixels that have a 4-neighbour with a different (class, instance)."""
    key = sem.astype(np.int64) * 65536 + inst.astype(np.int64)
    b = np.zeros(key.shape, dtype=bool)
    dx = key[:, 1:] != key[:, :-1]
    dy = key[1:, :] != key[:-1, :]
    b[:, 1:] |= dx
    b[:, :-1] |= dx
    b[1:, :] |= dy
    b[:-1, :] |= dy
    return b


def _surrounding_stuff(mask: np.ndarray, gt_sem: np.ndarray, stuff_lut: np.ndarray) -> int:
    """Most common stuff class just outside ``mask`` (-1 if none)."""
    ring = ndimage.binary_dilation(mask, iterations=2) & ~mask
    cls = gt_sem[ring].astype(np.int64)
    cls = cls[stuff_lut[cls]]
    return int(np.bincount(cls).argmax()) if len(cls) else -1


def simulate_labels(
    gt_sem: np.ndarray, gt_inst: np.ndarray, class_set: ClassSet, cfg: NoiseConfig, rng: np.random.Generator
) -> MachineLabels:
    """Simulate a 2D panoptic network's output for one frame from its exact GT (semantic ids, global instance ids)."""
    h, w = gt_sem.shape
    num_classes, void = class_set.num_classes, class_set.void_id
    lut_size = max(256, void + 1, int(gt_sem.max()) + 1)
    thing_lut = np.zeros(lut_size, dtype=bool)
    thing_lut[:num_classes] = class_set.thing_mask()
    stuff_lut = np.zeros(lut_size, dtype=bool)
    stuff_lut[:num_classes] = ~class_set.thing_mask()
    counts = NoiseCounts(frames=1, pixels=h * w)

    sem = gt_sem.astype(np.int64)
    valid = sem < num_classes
    is_thing = valid & thing_lut[sem]
    key = np.where(valid, sem * (1 << 20) + np.where(is_thing, gt_inst.astype(np.int64), 0), -1)
    uniq, inverse = np.unique(key, return_inverse=True)
    offset = 1 if len(uniq) and uniq[0] < 0 else 0
    uniq = uniq[offset:]
    seg_px = np.where(valid, inverse.reshape(h, w) - offset, -1)
    num_segs = len(uniq)
    seg_gt_class = uniq >> 20
    seg_class = seg_gt_class.copy()
    seg_inst = np.where(thing_lut[seg_gt_class], uniq & ((1 << 20) - 1), 0)
    next_id = int(max(seg_inst.max(initial=0), gt_inst.max(initial=0))) + 1
    counts.segments = num_segs

    # 1. whole-segment class confusions
    partners = cfg.partners(class_set)
    confused = np.zeros(num_segs, dtype=bool)
    for s in range(num_segs):
        options = partners.get(int(seg_gt_class[s]))
        if not options:
            continue
        counts.confusable_segments += 1
        if rng.random() < cfg.p_confuse:
            new = int(options[rng.integers(len(options))])
            confused[s] = True
            seg_class[s] = new
            if not class_set.isthing[new]:
                seg_inst[s] = 0
            elif seg_inst[s] == 0:
                seg_inst[s], next_id = next_id, next_id + 1
    counts.confused = int(confused.sum())

    # 2. missed thing segments
    thing_segs = [s for s in range(num_segs) if class_set.isthing[int(seg_class[s])]]
    counts.thing_segments = len(thing_segs)
    kept: List[int] = []
    for s in thing_segs:
        if rng.random() < cfg.p_miss:
            counts.missed += 1
            absorb = -1 if rng.random() < cfg.miss_to_void else _surrounding_stuff(seg_px == s, gt_sem, stuff_lut)
            seg_class[s] = void if absorb < 0 else absorb
            seg_inst[s] = 0
        else:
            kept.append(s)

    inst_px = np.where(seg_px >= 0, seg_inst[np.maximum(seg_px, 0)], 0)

    # 3. split thing segments by a random line through (near) their centroid
    for s in kept:
        counts.split_candidates += 1
        if rng.random() >= cfg.p_split:
            continue
        ys, xs = np.nonzero(seg_px == s)
        if len(ys) < 2:
            continue
        angle = rng.uniform(0.0, math.pi)
        cy, cx = ys.mean() + rng.normal(0, ys.std() * 0.2), xs.mean() + rng.normal(0, xs.std() * 0.2)
        side = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle) > 0
        if 0 < side.sum() < len(side):
            inst_px[ys[side], xs[side]] = next_id
            next_id += 1
            counts.split += 1

    # 4. merge same-class thing segments (a segment takes the id of another one of its class)
    by_class: Dict[int, List[int]] = {}
    for s in kept:
        by_class.setdefault(int(seg_class[s]), []).append(s)
    for group in by_class.values():
        if len(group) < 2:
            continue
        for s in rng.permutation(group):
            counts.merge_candidates += 1
            if rng.random() < cfg.p_merge:
                others = [t for t in group if t != s]
                target = int(others[rng.integers(len(others))])
                inst_px[(seg_px == s) & (inst_px == seg_inst[s])] = seg_inst[target]
                seg_inst[s] = seg_inst[target]
                counts.merged += 1

    # per-segment confidence and spread of the remaining probability mass
    seg_conf = rng.uniform(*cfg.confidence_range, size=num_segs)
    low = rng.random(num_segs) < cfg.p_low_confidence
    seg_conf[low] = rng.uniform(*cfg.low_confidence_range, size=int(low.sum()))
    if cfg.tta_like:
        seg_conf[confused] = rng.uniform(*cfg.tta_wrong_confidence, size=int(confused.sum()))
    spread = 0.5 * rng.dirichlet(np.ones(num_classes), size=max(num_segs, 1)) + 0.5 / num_classes
    labelled = seg_class < num_classes
    spread[np.nonzero(labelled)[0], seg_class[labelled]] = 0.0
    spread /= spread.sum(1, keepdims=True)

    sem_px = np.where(seg_px >= 0, seg_class[np.maximum(seg_px, 0)], void)
    conf_px = np.where(seg_px >= 0, seg_conf[np.maximum(seg_px, 0)], 0.0)

    # 5. smooth boundary displacement (all per-pixel maps move together)
    if cfg.boundary_jitter_px > 0:
        src = _displacement_gather(h, w, cfg.boundary_jitter_px, max(cfg.boundary_jitter_scale_px, 1.0), rng)
        sem_px, inst_px, conf_px, seg_px = (a.reshape(-1)[src].reshape(h, w) for a in (sem_px, inst_px, conf_px, seg_px))

    # 6. void holes
    if cfg.p_void_hole > 0:
        yy, xx = np.mgrid[0:h, 0:w]
        for s in range(num_segs):
            if rng.random() >= cfg.p_void_hole:
                continue
            ys, xs = np.nonzero(seg_px == s)
            if len(ys) == 0:
                continue
            k = rng.integers(len(ys))
            ra, rb = rng.uniform(*cfg.void_hole_radius, size=2) * min(h, w)
            ang = rng.uniform(0.0, math.pi)
            u = (xx - xs[k]) * math.cos(ang) + (yy - ys[k]) * math.sin(ang)
            v = -(xx - xs[k]) * math.sin(ang) + (yy - ys[k]) * math.cos(ang)
            sem_px[(u / max(ra, 0.5)) ** 2 + (v / max(rb, 0.5)) ** 2 <= 1.0] = void
            counts.void_holes += 1
    sem_px[~valid] = void
    is_void = sem_px == void
    inst_px[is_void | ~thing_lut[np.where(is_void, 0, sem_px)]] = 0
    conf_px[is_void] = 0.0

    # low confidence along label boundaries
    if cfg.boundary_width_px > 0:
        dist = ndimage.distance_transform_edt(~_boundaries(sem_px, inst_px))
        ramp = np.clip(dist / cfg.boundary_width_px, 0.0, 1.0)
        floor_conf = np.minimum(max(cfg.boundary_confidence, 0.5), conf_px)
        conf_px = np.where(is_void, 0.0, floor_conf + (conf_px - floor_conf) * ramp)

    # 7. per-frame instance renumbering
    ids = np.unique(inst_px[inst_px > 0])
    if len(ids):
        new_ids = (rng.choice(np.arange(1, 4 * len(ids) + 16), size=len(ids), replace=False) if cfg.renumber_instances
                   else np.arange(1, len(ids) + 1))
        pos = np.searchsorted(ids, inst_px)
        inst_px = np.where(inst_px > 0, new_ids[np.clip(pos, 0, len(ids) - 1)], 0)

    # class probabilities: `confidence` on the labelled class, the rest spread (TTA-like: mostly on the true class)
    rest = (1.0 - conf_px)[..., None] * spread[np.maximum(seg_px, 0)]
    if cfg.tta_like:
        wrong = ~is_void & valid & (sem_px != sem)
        share = float(np.clip(cfg.tta_true_share, 0.0, 1.0))
        rest[wrong] *= 1.0 - share
        rest[wrong, sem[wrong]] += share * (1.0 - conf_px[wrong])
    prob = rest
    lab = ~is_void
    prob[lab, sem_px[lab]] += conf_px[lab]
    prob[is_void] = 1.0 / num_classes

    counts.gt_labelled_pixels = int(valid.sum())
    counts.class_error_pixels = int((valid & (sem_px != sem)).sum())
    counts.labelled_pixels = int((valid & lab).sum())
    counts.labelled_error_pixels = int((valid & lab & (sem_px != sem)).sum())
    counts.void_pixels = int(is_void.sum())
    return MachineLabels(
        semantics=sem_px.astype(np.uint8 if void < 256 and num_classes <= 256 else np.uint16),
        instance=inst_px.astype(np.uint16),
        probability=prob.astype(np.float32),
        confidence=conf_px.astype(np.float32),
        counts=counts,
    )
