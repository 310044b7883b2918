"""Top-k class-distribution store against a direct reference."""

from __future__ import annotations

import torch

from plift_ns.data.compact import TopKDistributions


def test_topk_store_round_trip() -> None:
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(2, 5, 7, 11) * 3, dim=-1)
    store = TopKDistributions((2, 5, 7), num_classes=11, k=3)
    for i in range(2):
        store.store(i, probs[i].half())
    c, y, x = torch.tensor([0, 1, 1]), torch.tensor([0, 4, 2]), torch.tensor([6, 0, 3])
    got = store.gather(c, y, x)
    ref = probs[c, y, x]
    # reference by hand: keep the 3 largest, spread the rest evenly over the other 8 classes
    for row in range(3):
        order = torch.argsort(ref[row], descending=True)
        top, rest = order[:3], order[3:]
        assert torch.allclose(got[row, top], ref[row, top], atol=2.5 / 255)
        expected_rest = (1 - ref[row, top].sum()) / 8
        assert torch.allclose(got[row, rest], expected_rest.expand(8), atol=2.5 / 255)
    assert torch.allclose(got.sum(-1), torch.ones(3), atol=1e-6)
    assert store.nbytes() == 2 * 5 * 7 * 3 * 2


def test_topk_with_fewer_classes_than_k_is_exact_up_to_quantisation() -> None:
    probs = torch.tensor([[[[0.2, 0.8]]]])
    store = TopKDistributions((1, 1, 1), num_classes=2, k=3)
    store.store(0, probs[0])
    got = store.gather(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
    assert torch.allclose(got, probs[0, 0], atol=1 / 255)


def test_dense_store_keeps_float16_values() -> None:
    from plift_ns.data.compact import DenseDistributions

    probs = torch.softmax(torch.randn(1, 2, 3, 5), dim=-1)
    store = DenseDistributions((1, 2, 3), num_classes=5)
    store.store(0, probs[0])
    got = store.gather(torch.tensor([0, 0]), torch.tensor([1, 0]), torch.tensor([2, 1]))
    assert torch.equal(got, probs[0, [1, 0], [2, 1]].half().float())
