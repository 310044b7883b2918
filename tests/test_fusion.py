"""The oracle vote (plift_ns.eval.fusion): votes and renders on hand-computed views, instance association, the
plift-fusion CLI's error path and a small end-to-end on a generated scene."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import pytest
import torch
from nerfstudio.cameras.cameras import Cameras

from plift_ns.errors import PliftDataError
from plift_ns.eval.fusion import Fusion, LabelVote, ViewLabels, VoxelGrid, entrypoint, view_points

THINGS = np.array([False, True, True])  # class 0 stuff ("wall"), classes 1 and 2 things ("chair", "table")
FLIP = np.diag([-1.0, 1.0, -1.0])  # 180 degrees about y: the camera looks along +z instead of -z


def cameras(poses: Sequence[tuple], width: int) -> Cameras:
    """One-row pinhole cameras, focal 1 px, principal point mid-image: pixel u looks along (u + 0.5 - width / 2, 0, -1)
    in camera coordinates. ``poses``: (rotation 3x3, camera centre)."""
    c2w = torch.tensor(np.stack([np.concatenate([r, np.asarray(t, float)[:, None]], 1) for r, t in poses]),
                       dtype=torch.float32)
    return Cameras(camera_to_worlds=c2w, fx=1.0, fy=1.0, cx=width / 2.0, cy=0.5, width=width, height=1)


def labels(sem: List[int], inst: List[int], conf: List[float], prob: Optional[List[List[float]]] = None) -> ViewLabels:
    row = lambda values, dtype: np.array([values], dtype=dtype)  # noqa: E731
    return ViewLabels(row(sem, np.int64), row(inst, np.int64), row(conf, np.float32),
                      None if prob is None else np.array([prob], dtype=np.float32))


def test_vote_and_render_on_a_hand_computed_case() -> None:
    # Voxel edge 1. Depth is z-depth: pixel 0 of a camera at the origin looking along -z, depth 8, lies at
    # (-0.5 * 8, 0, -8) = (-4, 0, -8) (its ray length would put it at (-3.58, 0, -7.16), another voxel).
    # Points: L = (-4, 0, -8), R = (4, 0, -8), X = (12, 0, -8), every two at least 8 voxels apart.
    eye = np.eye(3)
    views = cameras([
        (eye, (0, 0, 0)),          # A: pixels -> L, R
        (eye, (8, 0, 0)),          # B: pixels -> R, X
        (FLIP, (0, 0, -16)),       # C: looks back along +z from below: pixels -> R, L
        (eye, (4, 0, -7.99)),      # D: depth 0.01 -> (3.995, 0, -8) and (4.005, 0, -8), both in R's voxel
    ], width=2)
    depths = [[8, 8], [8, 8], [8, 8], [0.01, 0.01]]
    view_labels = [
        labels([0, 1], [0, 5], [1.0, 0.9]),                                                  # one-hot
        labels([2, 0], [7, 0], [0.6, 0.8], prob=[[0.1, 0.3, 0.6], [0.8, 0.1, 0.1]]),         # with probabilities
        labels([1, 0], [2, 0], [0.7, 1.0]),
        labels([1, 2], [9, 4], [0.5, 1.0]),                                                  # two pixels, one voxel
    ]
    points = [view_points(views, i, np.array([d], float)) for i, d in enumerate(depths)]
    L, R, X = np.array([[-4.0, 0, -8]]), np.array([[4.0, 0, -8]]), np.array([[12.0, 0, -8]])
    for (p, valid), expected in zip(points, [(L, R), (R, X), (R, L), (R - [0.005, 0, 0], R + [0.005, 0, 0])]):
        assert valid.all()
        np.testing.assert_allclose(p[0], np.concatenate(expected), atol=1e-4)

    grid = VoxelGrid.from_points([p.reshape(-1, 3) for p, _ in points], voxel_size=1.0)
    assert grid.num_voxels == 3
    vote = LabelVote(grid, THINGS)
    for (p, valid), lab in zip(points, view_labels):
        vote.add_view(p, valid, lab)
    fused = vote.result()

    # Votes: one per view and voxel (a view's pixels in one voxel share it), weighted by confidence x probability.
    at = lambda point: int(grid.index(point)[0])  # noqa: E731
    expected_r = (np.array([0, 0.9, 0])                      # A: chair, confidence 0.9
                  + 0.6 * np.array([0.1, 0.3, 0.6])          # B: distribution x confidence 0.6
                  + np.array([0, 0.7, 0])                    # C: chair, 0.7
                  + 0.5 * np.array([0, 0.5, 0]) + 0.5 * np.array([0, 0, 1.0]))  # D: half a vote each
    np.testing.assert_allclose(fused.class_votes[at(R)], expected_r)  # [0.06, 2.03, 0.86]
    np.testing.assert_allclose(fused.class_votes[at(L)], [2.0, 0, 0])
    np.testing.assert_allclose(fused.class_votes[at(X)], 0.8 * np.array([0.8, 0.1, 0.1]))

    # Test views: looked up with their own depth. T1 sees L and R; T2 sees R and has no depth at pixel 1; T3's pixel 0
    # lands at (-2, 0, -4), a voxel nobody voted for.
    tests = cameras([(eye, (0, 0, 0)), (eye, (8, 0, 0)), (eye, (0, 0, 0))], width=2)
    rendered = [fused.lookup(*view_points(tests, i, np.array([d], float)))
                for i, d in enumerate([[8, 8], [0, 8], [4, 8]])]
    (s1, i1), (s2, i2), (s3, i3) = ((s[0].tolist(), i[0].tolist()) for s, i in rendered)
    assert s1 == [0, 1] and s2 == [-1, 0] and s3 == [-1, 1]
    assert i1[0] == 0 and i1[1] > 0 and i2 == [0, 0] and i3 == [0, i1[1]]  # stuff and void: 0; R: one id everywhere


def test_instance_ids_permuted_between_views_map_to_the_same_3d_instances() -> None:
    # Three chairs at P1 = (-4, 0, -4), P2 = (0, 0, -4), P3 = (4, 0, -4). Camera A at the origin sees them left to right;
    # camera B looks back from (0, 0, -8) and sees them right to left, with other per-view ids.
    views = cameras([(np.eye(3), (0, 0, 0)), (FLIP, (0, 0, -8)), (np.eye(3), (0, 0, 0))], width=3)
    points = [view_points(views, i, np.full((1, 3), 4.0)) for i in range(3)]
    np.testing.assert_allclose(points[1][0][0], [[4, 0, -4], [0, 0, -4], [-4, 0, -4]], atol=1e-4)
    grid = VoxelGrid.from_points([p.reshape(-1, 3) for p, _ in points], voxel_size=1.0)
    vote = LabelVote(grid, THINGS)
    first = vote.add_view(*points[0], labels([1, 1, 1], [1, 2, 3], [0.9, 0.9, 0.9]))       # P1: 1, P2: 2, P3: 3
    second = vote.add_view(*points[1], labels([1, 1, 1], [4, 9, 2], [0.9, 0.9, 0.9]))      # P3: 4, P2: 9, P1: 2
    third = vote.add_view(*points[2], labels([1, 1, 1], [3, 1, 2], [0.9, 0.9, 0.9]))       # P1: 3, P2: 1, P3: 2
    assert len(set(first.values())) == 3
    assert second == {(1, 2): first[(1, 1)], (1, 9): first[(1, 2)], (1, 4): first[(1, 3)]}
    assert third == {(1, 3): first[(1, 1)], (1, 1): first[(1, 2)], (1, 2): first[(1, 3)]}
    sem, inst = vote.result().lookup(*points[0])
    assert sem[0].tolist() == [1, 1, 1] and inst[0].tolist() == [first[(1, 1)], first[(1, 2)], first[(1, 3)]]


def test_cli_refuses_a_scene_without_depth(scene_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    meta_path = scene_copy / "transforms.json"
    meta = json.loads(meta_path.read_text())
    for frame in meta["frames"]:
        del frame["depth_file_path"]
    meta_path.write_text(json.dumps(meta))
    out = tmp_path / "fusion"
    monkeypatch.setattr(sys, "argv", ["plift-fusion", "--data", str(scene_copy), "--output-dir", str(out)])
    with pytest.raises(SystemExit) as done:
        entrypoint()
    printed = capsys.readouterr()
    assert done.value.code == 2
    assert f"{meta_path}: " in printed.out and "no depth maps" in printed.out and not printed.err
    assert not out.exists()


def test_end_to_end_vote_beats_the_2d_labels(tiny_scene_many_views: Path, tmp_path: Path) -> None:
    out = tmp_path / "fusion"
    results = Fusion(data=tiny_scene_many_views, output_dir=out).main()
    vote, labels_2d = results["oracle_vote"], results["labels_2d"]
    assert vote["num_frames"] == labels_2d["num_frames"] == 8
    assert vote["mIoU"] >= labels_2d["mIoU"]  # the simulated label errors differ between views: the vote removes them
    assert results["unvoted_fraction"] < 0.02
    assert json.loads((out / "metrics.json").read_text())["oracle_vote"]["mIoU"] == vote["mIoU"]
    assert len(list((out / "semantics").glob("*.png"))) == len(list((out / "views").glob("*.png"))) == 8
    with pytest.raises(PliftDataError, match="--overwrite"):
        Fusion(data=tiny_scene_many_views, output_dir=out).main()
