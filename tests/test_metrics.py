"""Tests of plift_ns.eval: panoptic / semantic / photometric metrics, folder mode and visualisation helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.functional.detection import panoptic_quality as tm_panoptic_quality

from plift_ns.data.classes import ClassSet, load_class_set
from plift_ns.errors import PliftDataError
from plift_ns.eval.folders import evaluate_folders
from plift_ns.eval.metrics import (
    PanopticEvaluator,
    frame_pair_table,
    mean_iou,
    mean_psnr,
    panoptic_quality,
    panoptic_quality_scene,
    pq_stats_from_pairs,
    psnr,
    semantic_confusion,
)
from plift_ns.eval.visualize import colorize_instances, colorize_semantics, side_by_side, write_png

VOID = 255
THING = np.array([False, True, True, False, True, False])  # 6 classes: 3 things, 3 stuff
C = THING.size
CLASSES = ClassSet(
    names=tuple(f"c{i}" for i in range(C)),
    isthing=tuple(bool(t) for t in THING),
    colors=tuple((40 * i + 20, 200 - 30 * i, 100 + 20 * i) for i in range(C)),
    void_id=VOID,
    name="test6",
)



def panoptic_stats(ps, pi, gs, gi, classes: ClassSet, ignore_pred_void: bool = False):
    """Per-class IoU sum / TP / FP / FN of one frame (the library's frame table + matching)."""
    return pq_stats_from_pairs(frame_pair_table(ps, pi, gs, gi, classes), classes.num_classes, ignore_pred_void=ignore_pred_void)


# ----------------------------------------------------------------------------------------------------------------------
# random blocky cases
# ----------------------------------------------------------------------------------------------------------------------


def _blocky_gt(rng, h=48, w=64, bs=8, void_frac=0.15):
    gh, gw = h // bs, w // bs
    block = np.ones((bs, bs), dtype=np.int64)
    sem = np.kron(rng.integers(0, C, (gh, gw)), block)
    inst = np.kron(rng.integers(1, 4, (gh, gw)), block)
    void = np.kron(rng.random((gh, gw)) < void_frac, block).astype(bool)
    sem = np.where(void, VOID, sem)
    inst = np.where(void | ~THING[np.where(void, 0, sem)], 0, inst)
    return sem, inst


def _perturbed_pred(rng, gs, gi, pred_void_frac):
    """Shift the GT by a few pixels (IoUs spread around 0.5), relabel some pixels, maybe add predicted void."""
    ps = np.roll(gs, int(rng.integers(-4, 5)), axis=int(rng.integers(0, 2)))
    pi = np.roll(gi, int(rng.integers(-4, 5)), axis=1) + rng.integers(0, 2)  # some instance ids change
    ps = np.where(rng.random(gs.shape) < 0.03, rng.integers(0, C, gs.shape), ps)
    ps = np.where(ps == VOID, rng.integers(0, C, gs.shape), ps)
    if pred_void_frac:
        ps = np.where(rng.random(gs.shape) < pred_void_frac, VOID, ps)
    # stuff pixels may carry garbage instance ids: they must be ignored
    pi = np.where(rng.random(gs.shape) < 0.5, pi, pi + 7)
    return ps, pi


def _random_frames(rng, n, pred_void_frac):
    frames = []
    for _ in range(n):
        gs, gi = _blocky_gt(rng)
        ps, pi = _perturbed_pred(rng, gs, gi, pred_void_frac)
        frames.append((ps, pi, gs, gi))
    return frames


def _torchmetrics(frames):
    """torchmetrics PQ over a batch of frames: averages (PQ, SQ, RQ) and per-class values in class-id order."""
    preds = torch.tensor(np.stack([np.stack([f[0], f[1]], -1) for f in frames]))
    target = torch.tensor(np.stack([np.stack([f[2], f[3]], -1) for f in frames]))
    things = {int(i) for i in np.flatnonzero(THING)}
    stuffs = {int(i) for i in np.flatnonzero(~THING)}
    kwargs = dict(allow_unknown_preds_category=True, return_sq_and_rq=True)
    avg = tm_panoptic_quality(preds, target, things, stuffs, **kwargs).numpy()
    per = tm_panoptic_quality(preds, target, things, stuffs, return_per_class=True, **kwargs).numpy()
    order = sorted(things) + sorted(stuffs)  # torchmetrics' continuous ids: things first, then stuff
    per_class = {cid: per[k] for k, cid in enumerate(order)}
    return avg, per_class


def _brute_force_stats(frames, ignore_pred_void):
    """Independent reference: loops over boolean segment masks (COCO panopticapi rules + the optional symmetric
    predicted-void rule)."""
    iou_sum, tp, fp, fn = np.zeros(C), np.zeros(C, int), np.zeros(C, int), np.zeros(C, int)
    for ps, pi, gs, gi in frames:
        ps, pi, gs, gi = (np.asarray(a).ravel() for a in (ps, pi, gs, gi))

        def segments(sem, inst):
            out = {}
            for c in range(C):
                m = sem == c
                if not m.any():
                    continue
                if THING[c]:
                    for i in np.unique(inst[m]):
                        out[(c, int(i))] = m & (inst == i)
                else:
                    out[(c, 0)] = m
            return out

        P, G = segments(ps, pi), segments(gs, gi)
        gvoid, pvoid = gs == VOID, ps == VOID
        pm, gm = set(), set()
        for pk, p in P.items():
            for gk, g in G.items():
                if pk[0] != gk[0]:
                    continue
                inter = (p & g).sum()
                union = p.sum() - (p & gvoid).sum() + g.sum() - inter
                if ignore_pred_void:
                    union -= (g & pvoid).sum()
                if inter / union > 0.5:
                    pm.add(pk)
                    gm.add(gk)
                    tp[pk[0]] += 1
                    iou_sum[pk[0]] += inter / union
        for pk, p in P.items():
            if pk not in pm and (p & gvoid).sum() / p.sum() <= 0.5:
                fp[pk[0]] += 1
        for gk, g in G.items():
            if gk not in gm and not (ignore_pred_void and (g & pvoid).sum() / g.sum() > 0.5):
                fn[gk[0]] += 1
    return iou_sum, tp, fp, fn


def _averages_from_stats(iou_sum, tp, fp, fn, mask=None):
    denom = tp + 0.5 * fp + 0.5 * fn
    present = (tp + fp + fn) > 0
    if mask is not None:
        present &= mask
    pq = np.where(denom > 0, iou_sum / np.maximum(denom, 1e-12), 0)
    sq = np.where(tp > 0, iou_sum / np.maximum(tp, 1), 0)
    rq = np.where(denom > 0, tp / np.maximum(denom, 1e-12), 0)
    return pq[present].mean(), sq[present].mean(), rq[present].mean()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pred_void", [False, True])
def test_standard_pq_matches_torchmetrics(seed, pred_void):
    rng = np.random.default_rng(100 + seed + 1000 * pred_void)
    frames = _random_frames(rng, 3, 0.1 if pred_void else 0.0)
    # torchmetrics treats predicted void symmetrically; without predicted void both modes must agree with it
    modes = [True] if pred_void else [False, True]
    ref_avg, ref_per = _torchmetrics(frames)
    for ignore_pred_void in modes:
        res = panoptic_quality(frames, CLASSES, ignore_pred_void=ignore_pred_void)
        np.testing.assert_allclose([res["PQ"], res["SQ"], res["RQ"]], ref_avg, atol=1e-6)
        assert res["per_class"], "the random case should contain segments"
        for row in res["per_class"]:
            np.testing.assert_allclose([row["PQ"], row["SQ"], row["RQ"]], ref_per[row["id"]], atol=1e-6)
        # classes that do not appear are 0 in torchmetrics' table
        listed = {row["id"] for row in res["per_class"]}
        for cid in set(range(C)) - listed:
            np.testing.assert_allclose(ref_per[cid], 0.0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ignore_pred_void", [False, True])
def test_standard_pq_matches_brute_force_with_pred_void(seed, ignore_pred_void):
    rng = np.random.default_rng(7 + seed)
    frames = _random_frames(rng, 2, 0.15)
    iou_sum, tp, fp, fn = _brute_force_stats(frames, ignore_pred_void)
    stats = panoptic_stats(*frames[0], CLASSES, ignore_pred_void=ignore_pred_void)
    stats = stats + panoptic_stats(*frames[1], CLASSES, ignore_pred_void=ignore_pred_void)
    np.testing.assert_array_equal(stats.tp, tp)
    np.testing.assert_array_equal(stats.fp, fp)
    np.testing.assert_array_equal(stats.fn, fn)
    np.testing.assert_allclose(stats.iou_sum, iou_sum, atol=1e-12)
    res = panoptic_quality(frames, CLASSES, ignore_pred_void=ignore_pred_void)
    np.testing.assert_allclose([res["PQ"], res["SQ"], res["RQ"]], _averages_from_stats(iou_sum, tp, fp, fn))
    np.testing.assert_allclose(
        [res["PQ_th"], res["SQ_th"], res["RQ_th"]], _averages_from_stats(iou_sum, tp, fp, fn, THING)
    )
    np.testing.assert_allclose(
        [res["PQ_st"], res["SQ_st"], res["RQ_st"]], _averages_from_stats(iou_sum, tp, fp, fn, ~THING)
    )


@pytest.mark.parametrize("seed", range(3))
def test_scene_pq_is_pq_of_the_tiled_image(seed):
    rng = np.random.default_rng(50 + seed)
    frames = _random_frames(rng, 4, 0.05)
    scene = panoptic_quality_scene(frames, CLASSES, ignore_pred_void=True)
    tiled = [tuple(np.concatenate([f[k] for f in frames], axis=0) for k in range(4))]
    ref_avg, _ = _torchmetrics(tiled)
    np.testing.assert_allclose([scene["PQ"], scene["SQ"], scene["RQ"]], ref_avg, atol=1e-6)
    same = panoptic_quality(tiled, CLASSES, ignore_pred_void=True)
    for key in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st"):
        assert scene[key] == pytest.approx(same[key], abs=1e-12, nan_ok=True)
    assert scene["per_class"] == same["per_class"]


# ----------------------------------------------------------------------------------------------------------------------
# hand-worked cases
# ----------------------------------------------------------------------------------------------------------------------


def _row(res, cid):
    return next(r for r in res["per_class"] if r["id"] == cid)


@pytest.mark.parametrize("in_void, is_fp", [(6, False), (4, True), (5, True)])
def test_false_positive_mostly_in_gt_void_is_ignored(in_void, is_fp):
    # 1 x 20 strip: GT = 10 void pixels then 10 pixels of stuff class 0
    gs = np.array([[VOID] * 10 + [0] * 10])
    gi = np.zeros_like(gs)
    ps = np.zeros_like(gs)
    pi = np.zeros_like(gs)
    # predicted thing (class 1, instance 1): 10 pixels, `in_void` of them in GT void -> 60% / 40% / exactly 50%
    ps[0, 10 - in_void : 20 - in_void] = 1
    pi[0, 10 - in_void : 20 - in_void] = 1
    stats = panoptic_stats(ps, pi, gs, gi, CLASSES)
    assert stats.fp[1] == int(is_fp)
    assert stats.tp[1] == 0 and stats.fn[1] == 0


def test_iou_exactly_half_is_not_a_match_and_just_above_is():
    gs = np.full((1, 100), 1)
    gi = np.ones_like(gs)

    def run(n_pred):
        ps = np.where(np.arange(100) < n_pred, 1, 3)[None]
        pi = np.where(ps == 1, 5, 0)
        return panoptic_stats(ps, pi, gs, gi, CLASSES)

    half = run(50)  # IoU = 50 / 100 exactly
    assert (half.tp[1], half.fp[1], half.fn[1]) == (0, 1, 1)
    above = run(51)  # IoU = 0.51
    assert (above.tp[1], above.fp[1], above.fn[1]) == (1, 0, 0)
    assert above.iou_sum[1] == pytest.approx(0.51)
    res = panoptic_quality([(np.where(np.arange(100) < 51, 1, 3)[None], np.full((1, 100), 5), gs, gi)], CLASSES)
    # class 1: PQ = 0.51; class 3 (stuff): one FP -> PQ 0
    assert _row(res, 1)["PQ"] == pytest.approx(0.51)
    assert _row(res, 3)["FP"] == 1 and _row(res, 3)["PQ"] == 0
    assert res["PQ"] == pytest.approx(0.51 / 2)
    assert res["PQ_th"] == pytest.approx(0.51) and res["PQ_st"] == 0.0


def test_gt_void_is_removed_from_the_prediction_area_in_the_iou():
    # GT thing 40 px, 60 px GT void; prediction covers everything: IoU = 40 / (100 - 60 + 40 - 40) = 1
    gs = np.array([[1] * 40 + [VOID] * 60])
    gi = np.where(gs == 1, 2, 0)
    ps, pi = np.ones_like(gs), np.full_like(gs, 9)
    stats = panoptic_stats(ps, pi, gs, gi, CLASSES)
    assert stats.tp[1] == 1 and stats.iou_sum[1] == pytest.approx(1.0)


def test_pred_void_modes():
    # GT thing 10 px; prediction: 4 px of it, 6 px predicted void
    gs = np.full((1, 10), 2)
    gi = np.ones_like(gs)
    ps = np.array([[2] * 4 + [VOID] * 6])
    pi = np.where(ps == 2, 1, 0)
    coco = panoptic_stats(ps, pi, gs, gi, CLASSES)  # IoU 0.4 -> FP + FN
    assert (coco.tp[2], coco.fp[2], coco.fn[2]) == (0, 1, 1)
    sym = panoptic_stats(ps, pi, gs, gi, CLASSES, ignore_pred_void=True)  # IoU 4 / (10 - 6) = 1
    assert (sym.tp[2], sym.fp[2], sym.fn[2]) == (1, 0, 0)
    # all predicted void: nothing counted in the symmetric mode, one FN in the COCO mode
    allvoid = np.full_like(gs, VOID)
    assert panoptic_stats(allvoid, pi, gs, gi, CLASSES, ignore_pred_void=True).fn[2] == 0
    assert panoptic_stats(allvoid, pi, gs, gi, CLASSES).fn[2] == 1


def test_stuff_instances_are_ignored_and_thing_instance_zero_is_a_segment():
    gs = np.array([[0, 0, 0, 0, 1, 1, 1, 1]])
    gi = np.array([[0, 0, 0, 0, 0, 0, 0, 0]])  # thing pixels without instance id -> segment (1, 0)
    ps = gs.copy()
    pi = np.array([[3, 4, 5, 6, 0, 0, 0, 0]])  # stuff instance ids are garbage
    res = panoptic_quality([(ps, pi, gs, gi)], CLASSES)
    assert res["PQ"] == pytest.approx(1.0)
    assert [(r["id"], r["TP"]) for r in res["per_class"]] == [(0, 1), (1, 1)]
    # a thing split into two predicted instances is no longer a perfect match
    pi2 = np.array([[0, 0, 0, 0, 1, 1, 1, 2]])
    stats = panoptic_stats(ps, pi2, gs, gi, CLASSES)
    assert (stats.tp[1], stats.fp[1], stats.fn[1]) == (1, 1, 0)
    assert stats.iou_sum[1] == pytest.approx(0.75)


def test_scene_pq_drops_when_an_instance_id_changes_in_one_view():
    # three views of two chairs (class 1) on a floor (class 0); GT ids consistent across views
    frames = []
    for _ in range(3):
        gs = np.zeros((8, 12), dtype=np.int64)
        gi = np.zeros_like(gs)
        gs[2:6, 1:5], gi[2:6, 1:5] = 1, 1
        gs[2:6, 7:11], gi[2:6, 7:11] = 1, 2
        frames.append([gs.copy(), gi.copy() * 10, gs, gi])  # prediction: perfect, ids 10 / 20
    consistent = [tuple(f) for f in frames]
    assert panoptic_quality_scene(consistent, CLASSES)["PQ"] == pytest.approx(1.0)
    # the first chair gets id 30 in the last view only (and the second chair keeps 20)
    swapped = [list(f) for f in frames]
    swapped[2][1] = np.where(swapped[2][1] == 10, 30, swapped[2][1])
    swapped = [tuple(f) for f in swapped]
    assert panoptic_quality(swapped, CLASSES)["PQ"] == pytest.approx(panoptic_quality(consistent, CLASSES)["PQ"])
    scene = panoptic_quality_scene(swapped, CLASSES)
    assert scene["PQ"] < 1.0
    chair = _row(scene, 1)
    # pred (1,10) covers 2 of the 3 views of GT chair 1: IoU 2/3 > 0.5 still matches; (1,30) is an extra FP
    assert (chair["TP"], chair["FP"], chair["FN"]) == (2, 1, 0)
    # the two chairs' ids swapped in two of three views: each predicted id covers 1 view of one chair and 2 of the
    # other (IoU 2/4 = 0.5 with the latter: no match), so both chairs are lost at scene level only
    swapped2 = [list(f) for f in frames]
    for k in (1, 2):
        swapped2[k][1] = np.where(swapped2[k][1] == 10, 20, np.where(swapped2[k][1] == 20, 10, swapped2[k][1]))
    swapped2 = [tuple(f) for f in swapped2]
    res2 = panoptic_quality_scene(swapped2, CLASSES)
    chair2 = _row(res2, 1)
    assert (chair2["TP"], chair2["FP"], chair2["FN"]) == (0, 2, 2)
    assert res2["PQ"] == pytest.approx(0.5)  # floor perfect, chairs 0
    assert panoptic_quality(swapped2, CLASSES)["PQ"] == pytest.approx(1.0)
    assert panoptic_quality([tuple(f) for f in swapped2], CLASSES)["PQ"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------------------------------
# semantic + photometric metrics
# ----------------------------------------------------------------------------------------------------------------------


def test_miou_against_brute_force():
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(4):
        gs, _ = _blocky_gt(rng)
        ps, _ = _perturbed_pred(rng, gs, np.zeros_like(gs), 0.05)
        frames.append((ps, gs))
    res = mean_iou(frames, CLASSES)
    P = np.concatenate([f[0].ravel() for f in frames])
    G = np.concatenate([f[1].ravel() for f in frames])
    keep = G != VOID
    P, G = P[keep], G[keep]
    ious = []
    for c in range(C):
        tp = np.sum((P == c) & (G == c))
        union = np.sum((P == c) | (G == c))
        if union:
            ious.append(tp / union)
    assert res["mIoU"] == pytest.approx(np.mean(ious), abs=1e-12)
    assert res["pixel_acc"] == pytest.approx(np.mean(P == G), abs=1e-12)
    assert len(res["per_class"]) == len(ious)
    conf = semantic_confusion(*frames[0], CLASSES)
    assert conf.shape == (C, C + 1)
    assert conf.sum() == np.sum(frames[0][1] != VOID)


def test_psnr_hand_formula():
    rng = np.random.default_rng(0)
    a = rng.random((6, 5, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    mse = np.mean((a - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * math.log10(1.0 / mse))
    assert psnr(a, a) == math.inf
    a8, b8 = (a * 255).round().astype(np.uint8), (b * 255).round().astype(np.uint8)
    mse8 = np.mean((a8 / 255.0 - b8 / 255.0) ** 2)
    assert psnr(a8, b8) == pytest.approx(-10 * math.log10(mse8))
    mask = np.zeros((6, 5), bool)
    mask[:3] = True
    assert psnr(a, b, mask=mask) == pytest.approx(-10 * math.log10(np.mean((a[:3] - b[:3]) ** 2)))
    c = np.clip(a + 0.1, 0, 1)
    assert mean_psnr([a, a], [b, c]) == pytest.approx((psnr(a, b) + psnr(a, c)) / 2)
    with pytest.raises(PliftDataError, match=r"frame 0.*\(6, 5, 3\).*\(6, 4, 3\)"):
        psnr(a, b[:, :4], frame=0)


# ----------------------------------------------------------------------------------------------------------------------
# evaluator
# ----------------------------------------------------------------------------------------------------------------------


def test_evaluator_agrees_with_the_functions_and_reports_every_key():
    rng = np.random.default_rng(11)
    frames = _random_frames(rng, 5, 0.0)
    ev = PanopticEvaluator(CLASSES)
    for i, f in enumerate(frames):
        rgb = rng.random((*f[0].shape, 3))
        record = ev.add_frame(*f, pred_rgb=rgb, gt_rgb=np.clip(rgb + 0.02, 0, 1), name=f"frame_{i:05d}.png")
        assert record["name"] == f"frame_{i:05d}.png" and record["PSNR"] > 30
    res = ev.compute()
    keys = {f"{m}{s}{t}" for m in ("PQ", "SQ", "RQ") for s in ("", "_scene") for t in ("", "_th", "_st")}
    keys |= {"mIoU", "pixel_acc", "PSNR", "num_frames", "per_class", "per_frame"}
    assert keys == set(res)
    std = panoptic_quality(frames, CLASSES)
    scene = panoptic_quality_scene(frames, CLASSES)
    sem = mean_iou([(f[0], f[2]) for f in frames], CLASSES)
    for t in ("", "_th", "_st"):
        for m in ("PQ", "SQ", "RQ"):
            assert res[f"{m}{t}"] == pytest.approx(std[f"{m}{t}"])
            assert res[f"{m}_scene{t}"] == pytest.approx(scene[f"{m}{t}"])
    assert res["mIoU"] == pytest.approx(sem["mIoU"]) and res["pixel_acc"] == pytest.approx(sem["pixel_acc"])
    assert res["PSNR"] == pytest.approx(-10 * math.log10(0.02**2), abs=0.5)
    assert res["num_frames"] == 5 and len(res["per_frame"]) == 5
    assert set(res["per_class"]) == {"PQ_scene", "PQ", "IoU"}
    row = res["per_class"]["PQ_scene"][0]
    assert set(row) == {"id", "name", "isthing", "PQ", "SQ", "RQ", "TP", "FP", "FN", "in_average"}
    assert 0.0 <= res["PQ_scene"] <= 1.0 and 0.0 <= res["mIoU"] <= 1.0


def test_evaluator_robust_threshold_drops_rare_classes():
    gs = np.zeros((10, 100), dtype=np.int64)
    gs[0, :3] = 3  # class 3 covers 0.3% of the pixels
    ps = gs.copy()
    ps[0, :3] = 0  # ... and is missed
    zero = np.zeros_like(gs)
    plain = PanopticEvaluator(CLASSES)
    plain.add_frame(ps, zero, gs, zero)
    robust = PanopticEvaluator(CLASSES, robust_threshold=0.005)
    robust.add_frame(ps, zero, gs, zero)
    a, b = plain.compute(), robust.compute()
    assert a["PQ_scene"] < 1.0 and b["PQ_scene"] == pytest.approx(a["per_class"]["PQ_scene"][0]["PQ"])
    assert b["mIoU"] > a["mIoU"]
    assert [r["in_average"] for r in b["per_class"]["PQ"]] == [True, False]


def test_evaluator_many_frames_identical_views():
    cs = load_class_set("scannet21")
    rng = np.random.default_rng(0)
    block = np.ones((16, 16), dtype=np.int64)
    ev = PanopticEvaluator(cs)
    gs = np.kron(rng.integers(0, 21, (15, 20)), block).astype(np.uint8)
    gi = np.kron(rng.integers(0, 30, (15, 20)), block).astype(np.uint16)
    gi[~cs.thing_mask()[gs]] = 0
    ps, pi = np.roll(gs, 3, axis=1).astype(np.int64), np.roll(gi, 3, axis=1).astype(np.int64)
    rgb = rng.random((240, 320, 3), dtype=np.float32)
    for _ in range(100):
        ev.add_frame(ps, pi, gs, gi, rgb, rgb * 0.9)
    res = ev.compute()
    assert res["num_frames"] == 100
    assert res["PQ_scene"] == pytest.approx(res["PQ"])  # identical views: scene PQ = per-frame PQ


# ----------------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_naming_the_frame():
    gs, gi = np.zeros((4, 5), int), np.zeros((4, 5), int)
    ev = PanopticEvaluator(CLASSES)
    ev.add_frame(gs, gi, gs, gi)
    with pytest.raises(PliftDataError, match=r"frame 1 \(view_a\.png\).*pred semantics shape \(4, 6\).*\(4, 5\)"):
        ev.add_frame(np.zeros((4, 6), int), gi, gs, gi, name="view_a.png")
    with pytest.raises(PliftDataError, match=r"frame 1.*gt semantics has class ids .*: 6, 17"):
        ev.add_frame(gs, gi, np.where(np.eye(4, 5, dtype=bool), 17, 6), gi)
    with pytest.raises(PliftDataError, match=r"frame 1.*pred semantics.*-3"):
        ev.add_frame(np.full((4, 5), -3), gi, gs, gi)
    with pytest.raises(PliftDataError, match="integer"):
        ev.add_frame(gs.astype(float), gi, gs, gi)
    with pytest.raises(PliftDataError, match=r"frame 1.*pred image shape"):
        ev.add_frame(gs, gi, gs, gi, np.zeros((4, 5, 3)), np.zeros((4, 4, 3)))
    with pytest.raises(PliftDataError, match="negative|instance"):
        ev.add_frame(np.ones((4, 5), int), np.full((4, 5), -2), gs, gi)
    assert ev.num_frames == 1  # failed frames are not half-added
    # void (255 or -1) is fine; instance ids on stuff are ignored even if negative
    ev.add_frame(np.full((4, 5), VOID), np.full((4, 5), -1), np.full((4, 5), -1), gi)
    with pytest.raises(PliftDataError, match=r"frame 2.*gt instances shape"):
        panoptic_quality([(gs, gi, gs, gi)] * 2 + [(gs, gi, gs, gi[:2])], CLASSES)
    with pytest.raises(PliftDataError, match="no frames"):
        PanopticEvaluator(CLASSES).compute()


# ----------------------------------------------------------------------------------------------------------------------
# folder mode
# ----------------------------------------------------------------------------------------------------------------------


def _write_label(path, arr, dtype):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr).astype(dtype)).save(path)


def test_folder_mode(tmp_path):
    rng = np.random.default_rng(5)
    frames = _random_frames(rng, 3, 0.05)
    names = [f"frame_{i:05d}.png" for i in range(3)]
    dirs = {k: tmp_path / k for k in ("pred_sem", "pred_inst", "gt_sem", "gt_inst")}
    for name, (ps, pi, gs, gi) in zip(names, frames):
        _write_label(dirs["pred_sem"] / name, ps, np.uint8)
        _write_label(dirs["pred_inst"] / name, pi, np.uint16)
        _write_label(dirs["gt_sem"] / name, gs, np.uint8)
        _write_label(dirs["gt_inst"] / name, gi, np.uint16)
    args = [dirs["pred_sem"], dirs["pred_inst"], dirs["gt_sem"], dirs["gt_inst"], CLASSES]
    res = evaluate_folders(*args)
    ev = PanopticEvaluator(CLASSES)
    for f in frames:
        ev.add_frame(*f)
    ref = ev.compute()
    assert res["files"] == names
    for key in ("PQ", "SQ", "RQ", "PQ_scene", "SQ_scene", "RQ_scene", "mIoU", "pixel_acc"):
        assert res[key] == pytest.approx(ref[key])
    # a subset by name; a method without instances
    assert evaluate_folders(*args, names=names[:2])["num_frames"] == 2
    no_inst = evaluate_folders(dirs["pred_sem"], None, dirs["gt_sem"], dirs["gt_inst"], CLASSES)
    assert no_inst["mIoU"] == pytest.approx(ref["mIoU"]) and no_inst["PQ_th"] <= ref["PQ_th"] + 1e-12
    # RGB folders -> PSNR
    for name in names:
        img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / "p_rgb.png")
        (tmp_path / "pred_rgb").mkdir(exist_ok=True)
        (tmp_path / "gt_rgb").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / "pred_rgb" / name)
        Image.fromarray(255 - img).save(tmp_path / "gt_rgb" / name)
    with_rgb = evaluate_folders(*args, pred_rgb_dir=tmp_path / "pred_rgb", gt_rgb_dir=tmp_path / "gt_rgb")
    assert 0 < with_rgb["PSNR"] < 20

    # missing counterpart -> the error names the missing file
    (dirs["gt_inst"] / names[1]).unlink()
    with pytest.raises(PliftDataError, match=r"gt_inst/frame_00001\.png.*missing gt instance"):
        evaluate_folders(*args)
    _write_label(dirs["gt_inst"] / names[1], frames[1][3], np.uint16)
    # size mismatch -> names the file
    _write_label(dirs["pred_sem"] / names[2], frames[2][0][:, :60], np.uint8)
    with pytest.raises(PliftDataError, match=r"pred_sem/frame_00002\.png.*size \(48, 60\)"):
        evaluate_folders(*args)
    # class id out of range -> names the file
    _write_label(dirs["pred_sem"] / names[2], np.full((48, 64), 9), np.uint8)
    with pytest.raises(PliftDataError, match=r"pred_sem/frame_00002\.png.*class ids.*9"):
        evaluate_folders(*args)
    with pytest.raises(PliftDataError, match="does not exist"):
        evaluate_folders(tmp_path / "nope", None, dirs["gt_sem"], dirs["gt_inst"], CLASSES)


# ----------------------------------------------------------------------------------------------------------------------
# visualisation
# ----------------------------------------------------------------------------------------------------------------------


def test_visualisation_helpers(tmp_path):
    sem = np.array([[0, 1, 1, VOID], [2, 2, 3, -1]])
    inst = np.array([[0, 4, 5, 0], [4, 4, 0, 0]])
    rgb = colorize_semantics(sem, CLASSES)
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == CLASSES.colors[0] and tuple(rgb[1, 2]) == CLASSES.colors[3]
    assert not rgb[0, 3].any() and not rgb[1, 3].any()  # void is black

    view = colorize_instances(sem, inst, CLASSES)
    assert view.dtype == np.uint8 and view.shape == (2, 4, 3)
    assert not view[0, 3].any()
    assert not np.array_equal(view[0, 1], view[0, 2])  # two chairs, two colours
    assert not np.array_equal(view[0, 1], view[1, 0])  # same id 4, different class -> different colour
    assert view[0, 0].sum() < np.sum(CLASSES.colors[0])  # stuff darkened
    # stable: the same (class, id) gets the same colour in another frame of another shape
    other = colorize_instances(np.array([[3, 1, 1]]), np.array([[0, 7, 5]]), CLASSES)
    assert np.array_equal(other[0, 2], view[0, 2])

    panel = side_by_side([("gt", rgb), ("pred", view), ("float", np.ones((3, 5)))], title_height=12, gap=2)
    assert panel.shape == (12 + 3, 4 + 4 + 5 + 2 * 2, 3) and panel.dtype == np.uint8
    big = side_by_side([("semantics", np.zeros((40, 60, 3), np.uint8))])
    assert big[:14].max() > big[:14].min()  # the title was drawn

    path = write_png(tmp_path / "sub" / "panel.png", panel)
    assert np.array_equal(np.asarray(Image.open(path)), panel)
    lab = write_png(tmp_path / "lab.png", np.array([[0, 1000]], dtype=np.int64))
    assert np.asarray(Image.open(lab)).max() == 1000
