"""Tests for plift_ns.losses (Panoptic Lifting Eqs. 4-7)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from plift_ns.losses import (
    hungarian_assignment,
    instance_loss,
    instance_targets,
    panoptic_segment_ids,
    segment_consistency_loss,
    segment_majority_class,
    semantic_loss,
)

DTYPES = [torch.float32, torch.float64]


def _random_probs(n: int, k: int, gen: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    return torch.softmax(3.0 * torch.randn(n, k, generator=gen, dtype=dtype), dim=-1)


def _objective(probs: torch.Tensor, instance_ids: torch.Tensor, ids, surrogate) -> float:
    """Eq. 6 objective: sum over instances of the mean probability of the assigned surrogate id."""
    total = 0.0
    for h, j in zip(ids, surrogate, strict=True):
        total += probs[instance_ids == int(h), int(j)].mean().item()
    return total


def _brute_force(probs: torch.Tensor, instance_ids: torch.Tensor, ids) -> float:
    k = probs.shape[1]
    best = -math.inf
    for perm in itertools.permutations(range(k), len(ids)):
        best = max(best, _objective(probs, instance_ids, ids, perm))
    return best


# --------------------------------------------------------------------------------------------------------------------
# Hungarian assignment (Eq. 6)
# --------------------------------------------------------------------------------------------------------------------


def test_hungarian_matches_brute_force_on_random_cases():
    gen = torch.Generator().manual_seed(0)
    checked = 0
    for _ in range(300):
        k = int(torch.randint(1, 7, (1,), generator=gen))
        m = int(torch.randint(1, min(k, 4) + 1, (1,), generator=gen))
        n = int(torch.randint(m, 25, (1,), generator=gen))
        probs = _random_probs(n, k, gen)
        # arbitrary (non-compact) positive instance ids plus some unlabelled rays (0 / negative)
        pool = torch.randperm(50, generator=gen)[:m] + 1
        instance_ids = pool[torch.randint(0, m, (n,), generator=gen)]
        instance_ids[:m] = pool  # every instance present
        unlabelled = torch.rand(n, generator=gen) < 0.2
        unlabelled[:m] = False
        instance_ids[unlabelled] = torch.where(torch.rand(n, generator=gen) < 0.5, 0, -1)[unlabelled]

        ids, surrogate = hungarian_assignment(probs, instance_ids)
        assert ids.dtype == torch.long and surrogate.dtype == torch.long
        assert sorted(ids.tolist()) == sorted(pool.tolist())
        assert ids.tolist() == sorted(ids.tolist())
        assert len(set(surrogate.tolist())) == len(surrogate), "assignment must be injective"
        assert all(0 <= j < k for j in surrogate.tolist())
        got = _objective(probs, instance_ids, ids.tolist(), surrogate.tolist())
        assert got == pytest.approx(_brute_force(probs, instance_ids, ids.tolist()), abs=1e-9)
        checked += 1
    assert checked == 300


def test_hungarian_more_instances_than_ids_assigns_largest():
    gen = torch.Generator().manual_seed(1)
    k = 3
    # instance 7 has 1 ray, 2 has 5 rays, 9 has 4 rays, 4 has 3 rays, 5 has 3 rays -> keep 2, 9 and (tie) 4 < 5
    instance_ids = torch.tensor([7] + [2] * 5 + [9] * 4 + [4] * 3 + [5] * 3 + [0, -1])
    probs = _random_probs(instance_ids.numel(), k, gen)
    ids, surrogate = hungarian_assignment(probs, instance_ids)
    assert ids.tolist() == [2, 4, 9]
    assert sorted(surrogate.tolist()) == [0, 1, 2]
    got = _objective(probs, instance_ids, ids.tolist(), surrogate.tolist())
    assert got == pytest.approx(_brute_force(probs, instance_ids, ids.tolist()), abs=1e-9)
    # unassigned instances are unsupervised
    targets = instance_targets(probs, instance_ids)
    assert (targets[(instance_ids == 7) | (instance_ids == 5) | (instance_ids <= 0)] == -1).all()
    assert (targets[(instance_ids == 2) | (instance_ids == 9) | (instance_ids == 4)] >= 0).all()


def test_hungarian_obvious_case_and_logits():
    probs = torch.tensor([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.05, 0.05, 0.9], [0.6, 0.3, 0.1]])
    instance_ids = torch.tensor([5, 5, 3, 0])
    ids, surrogate = hungarian_assignment(probs, instance_ids)
    assert ids.tolist() == [3, 5]
    assert surrogate.tolist() == [2, 1]
    ids_l, surrogate_l = hungarian_assignment(probs.log(), instance_ids, from_logits=True)
    assert ids_l.tolist() == [3, 5] and surrogate_l.tolist() == [2, 1]


def test_hungarian_empty_and_no_instances():
    for probs, inst in [
        (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)),
        (torch.rand(5, 4), torch.tensor([0, -1, 0, 0, -3])),
        (torch.zeros(3, 0), torch.tensor([1, 2, 3])),
    ]:
        ids, surrogate = hungarian_assignment(probs, inst)
        assert ids.numel() == 0 and surrogate.numel() == 0
        assert ids.dtype == torch.long and surrogate.dtype == torch.long


# --------------------------------------------------------------------------------------------------------------------
# Instance loss (Eq. 5)
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_loss_hand_computation(dtype):
    probs = torch.tensor(
        [[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.05, 0.05, 0.9], [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]], dtype=dtype
    )
    instance_ids = torch.tensor([5, 5, 3, 0, -1])
    confidence = torch.tensor([1.0, 0.5, 2.0, 7.0, 9.0], dtype=dtype)
    # assignment: 5 -> 1, 3 -> 2; rays 3 and 4 are not counted; |R| = 3
    expected = -(1.0 * math.log(0.8) + 0.5 * math.log(0.7) + 2.0 * math.log(0.9)) / 3
    loss = instance_loss(probs, instance_ids, confidence)
    assert loss.dtype == dtype
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_instance_loss_gradient_only_into_probs_at_assigned_entries():
    gen = torch.Generator().manual_seed(2)
    probs = _random_probs(12, 5, gen).requires_grad_(True)
    instance_ids = torch.tensor([1, 1, 2, 2, 2, 0, -1, 3, 3, 0, 1, 2])
    confidence = torch.rand(12, generator=gen, dtype=torch.float64)
    loss = instance_loss(probs, instance_ids, confidence)
    loss.backward()
    targets = instance_targets(probs, instance_ids)
    expected_nonzero = torch.zeros(12, 5, dtype=torch.bool)
    rows = torch.nonzero(targets >= 0).squeeze(-1)
    expected_nonzero[rows, targets[rows]] = True
    assert torch.equal(probs.grad != 0, expected_nonzero)
    assert (probs.grad[instance_ids <= 0] == 0).all()
    # confidence and ids are not differentiable inputs; loss depends only on probs through the gradient path
    assert confidence.grad is None


def test_instance_loss_invariant_to_surrogate_permutation():
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        probs = _random_probs(30, 6, gen)
        instance_ids = torch.randint(-1, 5, (30,), generator=gen)
        confidence = torch.rand(30, generator=gen, dtype=torch.float64)
        perm = torch.randperm(6, generator=gen)
        a = instance_loss(probs, instance_ids, confidence)
        b = instance_loss(probs[:, perm], instance_ids, confidence)
        assert a.item() == pytest.approx(b.item(), rel=1e-9, abs=1e-12)
        a_l = instance_loss(probs.log(), instance_ids, confidence, from_logits=True)
        b_l = instance_loss(probs.log()[:, perm], instance_ids, confidence, from_logits=True)
        assert a_l.item() == pytest.approx(b_l.item(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "loss, ids, first_kept, seed",
    [
        (instance_loss, [1, 1, 2, 2, 0, 0, -1, 3, 3, 3], 1, 4),  # rays without a 2D instance (id <= 0)
        (segment_consistency_loss, [0, 0, 0, -1, -1, 3, 3, 7, -5, 7, 7, 0], 0, 10),  # rays in no segment (id < 0)
    ],
    ids=["instance_loss", "segment_consistency"],
)
def test_loss_ignores_unlabelled_rays(loss, ids, first_kept, seed):
    gen = torch.Generator().manual_seed(seed)
    n = len(ids)
    probs = _random_probs(n, 4, gen)
    ray_ids = torch.tensor(ids)
    confidence = torch.rand(n, generator=gen, dtype=torch.float64)
    keep = ray_ids >= first_kept
    full = loss(probs, ray_ids, confidence)
    only = loss(probs[keep], ray_ids[keep], confidence[keep])
    assert full.item() == pytest.approx(only.item(), rel=1e-12)
    # changing the probabilities of unlabelled rays does not change the loss
    probs2 = probs.clone()
    probs2[~keep] = _random_probs(int((~keep).sum()), 4, gen)
    assert loss(probs2, ray_ids, confidence).item() == pytest.approx(full.item(), rel=1e-12)


def test_instance_loss_from_logits_matches_cross_entropy():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    instance_ids = torch.randint(1, 4, (16,), generator=gen)
    confidence = torch.ones(16, dtype=torch.float64)
    targets = instance_targets(logits, instance_ids, from_logits=True)
    expected = F.cross_entropy(logits, targets)
    got = instance_loss(logits, instance_ids, confidence, from_logits=True)
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)


# --------------------------------------------------------------------------------------------------------------------
# Semantic loss (Eq. 4)
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_semantic_loss_matches_formula_and_ignores_void(dtype):
    gen = torch.Generator().manual_seed(6)
    n, c = 9, 4
    # rendered distributions that sum to < 1 (accumulation < 1) must not be renormalised
    probs = (_random_probs(n, c, gen) * torch.rand(n, 1, generator=gen, dtype=torch.float64)).to(dtype)
    target = _random_probs(n, c, gen).to(dtype)
    confidence = torch.rand(n, generator=gen, dtype=torch.float64).to(dtype)
    valid = torch.tensor([True, False, True, True, False, True, True, True, False])
    got = semantic_loss(probs, target, confidence, valid)
    expected = 0.0
    for r in range(n):
        if valid[r]:
            expected -= confidence[r].item() * sum(target[r, k].item() * math.log(probs[r, k].item()) for k in range(c))
    expected /= int(valid.sum())
    assert got.dtype == dtype
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # void rays: neither numerator nor denominator
    assert got.item() == pytest.approx(semantic_loss(probs[valid], target[valid], confidence[valid]).item(), rel=1e-6)


def test_semantic_loss_zero_confidence_contributes_nothing():
    gen = torch.Generator().manual_seed(7)
    probs = _random_probs(6, 3, gen).requires_grad_(True)
    target = F.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).double()
    confidence = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    loss = semantic_loss(probs, target, confidence)
    loss.backward()
    assert (probs.grad[confidence == 0] == 0).all()
    assert (probs.grad[confidence > 0] != 0).any()
    # changing the zero-confidence rays' predictions leaves the loss unchanged (|R| still counts them)
    probs2 = probs.detach().clone()
    probs2[confidence == 0] = torch.tensor([0.9, 0.05, 0.05], dtype=torch.float64)
    assert semantic_loss(probs2, target, confidence).item() == pytest.approx(loss.item(), rel=1e-12)
    # doubling the confidence doubles the loss
    assert semantic_loss(probs2, target, 2 * confidence).item() == pytest.approx(2 * loss.item(), rel=1e-12)


def test_semantic_loss_from_logits_equals_cross_entropy():
    gen = torch.Generator().manual_seed(8)
    logits = 4 * torch.randn(10, 5, generator=gen, dtype=torch.float64)
    target = _random_probs(10, 5, gen)
    ones = torch.ones(10, dtype=torch.float64)
    got = semantic_loss(logits, target, ones, from_logits=True)
    assert got.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-10)
    hard = torch.randint(0, 5, (10,), generator=gen)
    got_hard = semantic_loss(logits, F.one_hot(hard, 5).double(), ones, from_logits=True)
    assert got_hard.item() == pytest.approx(F.cross_entropy(logits, hard).item(), rel=1e-10)


def test_semantic_loss_clamps_zero_probabilities():
    probs = torch.tensor([[0.0, 1.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0]])
    loss = semantic_loss(probs, target, torch.ones(1), eps=1e-8)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(-math.log(1e-8), rel=1e-5)
    loss.backward()
    assert torch.isfinite(probs.grad).all()


# --------------------------------------------------------------------------------------------------------------------
# Segment consistency loss (Eq. 7)
# --------------------------------------------------------------------------------------------------------------------


def test_segment_majority_is_confidence_weighted():
    # segment 4: three low-confidence rays favour class 0, one high-confidence ray favours class 1
    probs = torch.tensor(
        [[0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.05, 0.9, 0.05], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]],
        dtype=torch.float64,
    )
    segment_ids = torch.tensor([4, 4, 4, 4, 11, -1])
    confidence = torch.tensor([0.1, 0.1, 0.1, 1.0, 1.0, 1.0], dtype=torch.float64)
    unweighted = segment_majority_class(probs, segment_ids, torch.ones(6, dtype=torch.float64))
    assert unweighted.tolist() == [0, 0, 0, 0, 2, -1]
    weighted = segment_majority_class(probs, segment_ids, confidence)
    assert weighted.tolist() == [1, 1, 1, 1, 2, -1]
    assert weighted.dtype == torch.long
    # same target from logits
    assert segment_majority_class(probs.log(), segment_ids, confidence, from_logits=True).tolist() == weighted.tolist()


@pytest.mark.parametrize("dtype", DTYPES)
def test_segment_consistency_value_and_decrease_toward_majority(dtype):
    gen = torch.Generator().manual_seed(9)
    n, c = 40, 5
    probs = _random_probs(n, c, gen).to(dtype)
    segment_ids = torch.randint(-1, 4, (n,), generator=gen)
    confidence = torch.rand(n, generator=gen, dtype=torch.float64).to(dtype)
    target = segment_majority_class(probs, segment_ids, confidence)
    keep = segment_ids >= 0
    expected = -(confidence[keep] * probs[keep, target[keep]].log()).sum() / keep.sum()
    loss = segment_consistency_loss(probs, segment_ids, confidence)
    assert loss.dtype == dtype
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # |R| of Eq. 7 given separately (every ray counts, the ignored ones add 0)
    every = torch.ones(n, dtype=torch.bool)
    over_all = segment_consistency_loss(probs, segment_ids, confidence, batch_rays=every)
    assert over_all.item() == pytest.approx((expected * keep.sum() / n).item(), rel=1e-5)

    onehot = F.one_hot(target.clamp(min=0), c).to(dtype)
    moved = 0.5 * probs + 0.5 * onehot
    moved[~keep] = probs[~keep]
    assert torch.equal(segment_majority_class(moved, segment_ids, confidence), target)
    assert segment_consistency_loss(moved, segment_ids, confidence) < loss

    # a gradient step lowers the loss too
    p = probs.clone().requires_grad_(True)
    segment_consistency_loss(p, segment_ids, confidence).backward()
    stepped = (p - 1e-3 * p.grad).detach()
    assert segment_consistency_loss(stepped, segment_ids, confidence) < loss
    assert (p.grad[~keep] == 0).all()


def test_segment_consistency_from_logits_matches_cross_entropy():
    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    segment_ids = torch.randint(0, 3, (20,), generator=gen)
    ones = torch.ones(20, dtype=torch.float64)
    target = segment_majority_class(logits, segment_ids, ones, from_logits=True)
    got = segment_consistency_loss(logits, segment_ids, ones, from_logits=True)
    assert got.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-10)


# --------------------------------------------------------------------------------------------------------------------
# Panoptic segment ids
# --------------------------------------------------------------------------------------------------------------------


def test_panoptic_segment_ids():
    thing_mask = torch.tensor([False, False, True, True])  # classes 0,1 stuff; 2,3 thing
    void_id = 255
    semantics = torch.tensor([0, 0, 1, 2, 2, 3, 3, 255, 1, 2, 0, 2])
    instance_ids = torch.tensor([0, 5, 0, 1, 1, 2, 7, 0, 3, 0, 1, 1])
    seg = panoptic_segment_ids(semantics, instance_ids, thing_mask, void_id)
    assert seg.dtype == torch.long and seg.shape == semantics.shape
    s = seg.tolist()
    # stuff class 0 (whatever its instance id) is one segment; stuff class 1 another
    assert s[0] == s[1] == s[10] and s[2] == s[8]
    assert s[0] != s[2]
    # thing instances: one segment per instance id
    assert s[3] == s[4] == s[11]
    assert s[5] != s[6] and s[3] not in (s[5], s[6])
    # instance id 1 (thing) must not collide with stuff class 1 or stuff pixels carrying instance id 1
    assert s[3] not in (s[0], s[2])
    # void and thing pixel without an instance are ignored
    assert s[7] == -1 and s[9] == -1
    # compact 0..m-1
    kept = sorted({v for v in s if v >= 0})
    assert kept == list(range(len(kept))) and len(kept) == 5
    # also robust to a void id inside the valid range and to out-of-range labels
    seg2 = panoptic_segment_ids(torch.tensor([0, 1, 9, -1]), torch.tensor([0, 0, 0, 0]), thing_mask[:2], void_id=1)
    assert seg2.tolist() == [0, -1, -1, -1]
    # things only: stuff pixels are ignored, the three thing instances stay apart
    things = panoptic_segment_ids(semantics, instance_ids, thing_mask, void_id, stuff=False).tolist()
    assert [things[i] for i in (0, 1, 2, 7, 8, 9, 10)] == [-1] * 7
    assert things[3] == things[4] == things[11] and len({things[3], things[5], things[6]}) == 3
    assert sorted({v for v in things if v >= 0}) == [0, 1, 2]


def test_panoptic_segment_ids_feed_consistency_loss():
    thing_mask = torch.tensor([False, True, True])
    semantics = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    instance_ids = torch.tensor([0, 0, 4, 4, 9, 9, 0])
    seg = panoptic_segment_ids(semantics, instance_ids, thing_mask, void_id=3)
    assert seg[-1] == -1 and len(set(seg[:-1].tolist())) == 3
    probs = torch.full((7, 3), 1 / 3, dtype=torch.float64)
    loss = segment_consistency_loss(probs, seg, torch.ones(7, dtype=torch.float64))
    assert loss.item() == pytest.approx(math.log(3), rel=1e-12)


# --------------------------------------------------------------------------------------------------------------------
# Empty inputs / dtypes
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [False, True])
def test_empty_inputs_return_graph_connected_zero(dtype, from_logits):
    probs = torch.zeros(0, 4, dtype=dtype, requires_grad=True)
    ids = torch.zeros(0, dtype=torch.long)
    conf = torch.zeros(0, dtype=dtype)
    losses = [
        semantic_loss(probs, torch.zeros(0, 4, dtype=dtype), conf, from_logits=from_logits),
        semantic_loss(probs, torch.zeros(0, 4, dtype=dtype), conf, torch.zeros(0, dtype=torch.bool)),
        instance_loss(probs, ids, conf, from_logits=from_logits),
        segment_consistency_loss(probs, ids, conf, from_logits=from_logits),
    ]
    for loss in losses:
        assert loss.shape == () and loss.dtype == dtype and loss.item() == 0.0
        assert loss.requires_grad
        loss.backward()
    assert segment_majority_class(probs, ids, conf).numel() == 0
    assert panoptic_segment_ids(ids, ids, torch.tensor([True, False]), 255).numel() == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_counted_rays_return_graph_connected_zero(dtype):
    probs = torch.softmax(torch.randn(5, 3, dtype=dtype), -1).requires_grad_(True)
    conf = torch.ones(5, dtype=dtype)
    losses = [
        semantic_loss(probs, probs.detach(), conf, valid=torch.zeros(5, dtype=torch.bool)),
        instance_loss(probs, torch.tensor([0, 0, -1, 0, -2]), conf),
        segment_consistency_loss(probs, torch.full((5,), -1), conf),
    ]
    for loss in losses:
        assert loss.item() == 0.0 and loss.dtype == dtype and loss.requires_grad
        loss.backward()
    assert (probs.grad == 0).all()


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        semantic_loss(torch.rand(3, 2), torch.rand(3, 3), torch.ones(3))
    with pytest.raises(ValueError):
        instance_loss(torch.rand(3, 2), torch.tensor([1, 2]), torch.ones(3))
