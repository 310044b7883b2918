"""Tests of the procedural synthetic scenes, the machine-label simulator, the scene writer and ``plift-synth``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from plift_ns.data.classes import load_class_set
from plift_ns.errors import PliftDataError
from plift_ns.synthetic import cli as synth_cli
from plift_ns.synthetic import writer as synth_writer
from plift_ns.synthetic.cameras import Intrinsics, look_at, make_trajectory
from plift_ns.synthetic.config import preset
from plift_ns.synthetic.noise import NoiseConfig, NoiseCounts, simulate_labels
from plift_ns.synthetic.render import RenderedView, render_view
from plift_ns.synthetic.scene import build_room
from plift_ns.synthetic.writer import generate_scene

CS = load_class_set("scannet21")
VOID = CS.void_id

Views = Tuple[object, Intrinsics, List[np.ndarray], List[RenderedView]]


@pytest.fixture(scope="module")
def synth_views() -> Views:
    """The room with 24 in-memory views (96x72) along the standard camera loop."""
    room = build_room(0)
    intr = Intrinsics.from_fov(96, 72, 70.0)
    poses = make_trajectory(room, 24, np.random.default_rng(0))
    return room, intr, poses, [render_view(room, p, intr) for p in poses]


@pytest.fixture(scope="module")
def synth_tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset written to disk once for the contract tests."""
    return generate_scene(preset("tiny"), tmp_path_factory.mktemp("synth") / "scene")


def _noisefree(**kwargs: float) -> NoiseConfig:
    return replace(NoiseConfig.clean(), **kwargs)


# --------------------------------------------------------------------------------------------------- scene & render


def test_room_has_enough_classes_and_instances(synth_views: Views) -> None:
    room, _, _, views = synth_views
    stuff = {c for c in room.class_ids_present() if not CS.isthing[c]}
    per_class = Counter(CS.names[i.class_id] for i in room.instances)
    assert len(stuff) >= 6
    assert len(per_class) >= 3 and sum(n >= 2 for n in per_class.values()) >= 3
    assert per_class["chair"] >= 3 and per_class["sofa"] >= 2

    sem = np.stack([v.semantics for v in views])
    inst = np.stack([v.instance for v in views])
    visible_stuff = {int(c) for c in np.unique(sem) if c != VOID and not CS.isthing[c]}
    visible_inst = {int(i) for i in np.unique(inst) if i > 0}
    visible_per_class = Counter(CS.names[i.class_id] for i in room.instances if i.instance_id in visible_inst)
    assert len(visible_stuff) >= 6
    assert len(visible_per_class) >= 3
    assert sum(n >= 2 for n in visible_per_class.values()) >= 3
    assert not (sem == VOID).any(), "a closed room must never leave a pixel unhit"
    # stuff pixels carry instance 0, thing pixels a valid global id of the right class
    thing_px = CS.thing_mask()[sem]
    assert (inst[~thing_px] == 0).all() and (inst[thing_px] > 0).all()
    cls_of = {i.instance_id: i.class_id for i in room.instances}
    for iid in visible_inst:
        assert set(np.unique(sem[inst == iid]).tolist()) == {cls_of[iid]}


def test_render_dtypes_and_depth_convention() -> None:
    room = build_room(0)
    intr = Intrinsics.from_fov(32, 24, 14.0)
    eye = np.array([0.0, -1.6, 2.2])
    view = render_view(room, look_at(eye, eye + np.array([-1.0, 0.0, 0.0])), intr)
    assert view.rgb.dtype == np.uint8 and view.rgb.shape == (24, 32, 3)
    assert view.depth.dtype == np.float32 and view.semantics.dtype == np.uint8 and view.instance.dtype == np.uint16
    # Looking straight at the west wall 3.5 m away: z-depth is 3.5 m on every pixel (not the ray length).
    assert (view.semantics == CS.index("wall")).all()
    np.testing.assert_allclose(view.depth, 3.5, atol=1e-4)


def test_look_at_is_opengl_convention() -> None:
    c2w = look_at(np.array([1.0, 2.0, 1.5]), np.array([1.0, 5.0, 1.5]))
    np.testing.assert_allclose(c2w[:3, 2], [0.0, -1.0, 0.0], atol=1e-12)  # camera looks along -z
    np.testing.assert_allclose(c2w[:3, 1], [0.0, 0.0, 1.0], atol=1e-12)  # y up
    np.testing.assert_allclose(c2w[:3, 0], [1.0, 0.0, 0.0], atol=1e-12)  # x right
    np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-12)


def test_cameras_inside_room_and_free_space(synth_views: Views) -> None:
    room, _, poses, views = synth_views
    for c2w, v in zip(poses, views):
        eye = c2w[:3, 3]
        assert np.all(eye > np.asarray(room.bounds_min)) and np.all(eye < np.asarray(room.bounds_max))
        assert 1.0 <= eye[2] <= 1.8
        assert not room.contains_point(eye, 0.25)
        assert v.depth.min() > 0.2


def _backproject(view: RenderedView, c2w: np.ndarray, intr: Intrinsics) -> np.ndarray:
    pts = intr.camera_rays() * view.depth[..., None]  # camera-space points (z = -depth)
    return pts.reshape(-1, 3) @ c2w[:3, :3].T + c2w[:3, 3]


def test_gt_is_multiview_consistent(synth_views: Views) -> None:
    room, intr, poses, views = synth_views
    agree = total = 0
    for a in range(len(views)):
        for b in (a + 1, a + 2, a + 5):
            b %= len(views)
            world = _backproject(views[a], poses[a], intr)
            w2c = np.linalg.inv(poses[b])
            cam = world @ w2c[:3, :3].T + w2c[:3, 3]
            z = -cam[:, 2]
            front = z > 0.05
            uv = np.full((len(z), 2), -1.0)
            uv[front] = intr.project(cam[front])
            u, v = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
            inside = front & (u >= 0) & (u < intr.w) & (v >= 0) & (v < intr.h)
            uu, vv = u[inside], v[inside]
            visible = np.abs(views[b].depth[vv, uu] - z[inside]) < 0.01 + 0.02 * z[inside]
            src = np.nonzero(inside)[0][visible]
            sa = views[a].semantics.reshape(-1)[src]
            ia = views[a].instance.reshape(-1)[src]
            sb = views[b].semantics[vv[visible], uu[visible]]
            ib = views[b].instance[vv[visible], uu[visible]]
            agree += int(((sa == sb) & (ia == ib)).sum())
            total += len(src)
    assert total > 50_000
    assert agree / total >= 0.98


def test_room_is_seeded() -> None:
    a, b, c = build_room(3), build_room(3), build_room(4)
    assert a.boxes == b.boxes
    assert a.boxes != c.boxes
    assert [i.class_id for i in a.instances] == [i.class_id for i in c.instances]


# --------------------------------------------------------------------------------------------------- label simulator


def test_clean_noise_reproduces_gt_partition(synth_views: Views) -> None:
    _, _, _, views = synth_views
    rng = np.random.default_rng(0)
    for v in views:
        m = simulate_labels(v.semantics, v.instance, CS, NoiseConfig.clean(), rng)
        assert m.semantics.dtype == np.uint8 and m.instance.dtype == np.uint16
        np.testing.assert_array_equal(m.semantics, v.semantics)
        thing = CS.thing_mask()[v.semantics]
        assert (m.instance[~thing] == 0).all() and (m.instance[thing] > 0).all()
        pairs = set(zip(v.instance[thing].tolist(), m.instance[thing].tolist()))
        assert len(pairs) == len(np.unique(v.instance[thing])) == len(np.unique(m.instance[thing]))
        assert m.counts.class_error_pixels == 0 and m.counts.void_pixels == 0


def test_machine_instance_ids_are_not_consistent_across_frames(synth_views: Views) -> None:
    _, _, _, views = synth_views
    rng = np.random.default_rng(1)
    ids: Dict[int, List[int]] = {}
    for v in views:
        m = simulate_labels(v.semantics, v.instance, CS, NoiseConfig(), rng)
        for gid in np.unique(v.instance[v.instance > 0]):
            mids = m.instance[(v.instance == gid) & (m.instance > 0)]
            if len(mids) >= 5:
                ids.setdefault(int(gid), []).append(int(np.bincount(mids).argmax()))
    frequent = {g: f for g, f in ids.items() if len(f) >= 6}
    assert len(frequent) >= 3
    for gid, frame_ids in frequent.items():
        share = Counter(frame_ids).most_common(1)[0][1] / len(frame_ids)
        assert share < 0.5, f"GT instance {gid} keeps machine id {Counter(frame_ids)}"


@pytest.mark.parametrize("p_confuse", [0.1, 0.3])
def test_measured_confusion_rate_matches_request(synth_views: Views, p_confuse: float) -> None:
    _, _, _, views = synth_views
    cfg = _noisefree(p_confuse=p_confuse)
    partners = cfg.partners(CS)
    rng = np.random.default_rng(2)
    counts = NoiseCounts()
    eligible = confused = 0
    for _ in range(12):
        for v in views:
            m = simulate_labels(v.semantics, v.instance, CS, cfg, rng)
            counts.add(m.counts)
            # independent measurement: a GT segment is confused if its machine class differs from its GT class
            for cls in np.unique(v.semantics):
                seg_ids = np.unique(v.instance[v.semantics == cls]) if CS.isthing[cls] else [0]
                for iid in seg_ids:
                    mask = (v.semantics == cls) & (v.instance == iid)
                    if int(cls) in partners:
                        eligible += 1
                        got = np.unique(m.semantics[mask])
                        assert len(got) == 1  # whole-segment confusion
                        confused += int(got[0] != cls)
                        assert got[0] == cls or int(got[0]) in partners[int(cls)]
    measured = counts.rates()["confused_segment_rate"]
    assert counts.confusable_segments == eligible > 3000
    assert counts.confused == confused
    tol = max(0.02, 4 * np.sqrt(p_confuse * (1 - p_confuse) / eligible))
    assert abs(measured - p_confuse) < tol


def test_other_measured_rates_track_knobs(synth_views: Views) -> None:
    _, _, _, views = synth_views
    cfg = _noisefree(p_miss=0.2, p_split=0.2, p_merge=0.3, p_void_hole=0.1, boundary_jitter_px=1.0)
    rng = np.random.default_rng(3)
    counts = NoiseCounts()
    for _ in range(4):
        for v in views:
            counts.add(simulate_labels(v.semantics, v.instance, CS, cfg, rng).counts)
    r = counts.rates()
    assert abs(r["missed_segment_rate"] - 0.2) < 0.05
    assert abs(r["split_segment_rate"] - 0.2) < 0.06
    assert abs(r["merged_segment_rate"] - 0.3) < 0.06
    assert abs(r["void_hole_rate"] - 0.1) < 0.04
    assert r["confused_segment_rate"] == 0.0
    assert 0.0 < r["void_fraction"] < 0.3 and 0.0 < r["pixel_class_error"] < 0.4


@pytest.mark.parametrize("tta_like", [False, True])
def test_probabilities_and_confidence_are_valid(synth_views: Views, tta_like: bool) -> None:
    _, _, _, views = synth_views
    cfg = NoiseConfig(p_confuse=0.3, tta_like=tta_like, boundary_jitter_px=0.0)
    rng = np.random.default_rng(4)
    wrong_conf, right_conf, edge_conf = [], [], []
    for v in views[:8]:
        m = simulate_labels(v.semantics, v.instance, CS, cfg, rng)
        p, c = m.probability, m.confidence
        assert p.shape == v.semantics.shape + (CS.num_classes,) and c.shape == v.semantics.shape
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
        assert (p >= 0).all() and (c >= 0).all() and (c <= 1).all()
        void = m.semantics == VOID
        assert (c[void] == 0).all()
        np.testing.assert_allclose(p[void], 1.0 / CS.num_classes, atol=1e-6)
        lab = ~void
        assert (p[lab].argmax(-1) == m.semantics[lab]).all()
        np.testing.assert_allclose(p[lab, m.semantics[lab]], c[lab], atol=1e-6)
        # confidence of segment interiors (>= 3 px from a label boundary) vs. on boundaries
        key = m.semantics.astype(np.int64) * 65536 + m.instance
        edge = np.zeros(key.shape, dtype=bool)
        edge[:, 1:] |= key[:, 1:] != key[:, :-1]
        edge[1:, :] |= key[1:, :] != key[:-1, :]
        interior = ndimage.distance_transform_edt(~edge) >= 3
        wrong = lab & (m.semantics != v.semantics)
        wrong_conf.append(c[wrong & interior])
        right_conf.append(c[lab & ~wrong & interior])
        edge_conf.append(c[lab & edge])
        if tta_like and wrong.any():
            second = np.argsort(p[wrong], -1)[:, -2]
            assert (second == v.semantics[wrong]).mean() > 0.95
    wc, rc, ec = (np.concatenate(x) for x in (wrong_conf, right_conf, edge_conf))
    assert len(wc) > 100 and np.median(rc) > 0.85
    assert ec.mean() < rc.mean() - 0.15  # lower confidence near boundaries
    if tta_like:
        assert np.median(wc) < 0.7
    else:
        assert np.median(wc) > 0.85  # wrong segments are confidently wrong, like Mask2Former


def test_unknown_confusable_pair_format_is_rejected() -> None:
    with pytest.raises(PliftDataError):
        NoiseConfig(confusable_pairs=("chair-sofa",)).partners(CS)


# --------------------------------------------------------------------------------------------------- writer & CLI


def test_scene_folder_follows_contract(synth_tiny_scene: Path) -> None:
    scene = synth_tiny_scene
    cfg = preset("tiny")
    meta = json.loads((scene / "transforms.json").read_text())
    w, h = meta["w"], meta["h"]
    assert (w, h) == (cfg.width, cfg.height) and meta["camera_model"] == "OPENCV"
    assert meta["panoptic_classes"] == "scannet21" and meta["depth_unit_scale_factor"] == 0.001
    files = [f["file_path"] for f in meta["frames"]]
    assert len(files) == cfg.num_views
    assert len(meta["train_filenames"]) == cfg.num_train and len(meta["test_filenames"]) == cfg.num_test
    assert sorted(meta["train_filenames"] + meta["test_filenames"]) == sorted(files)
    test_idx = [files.index(f) for f in meta["test_filenames"]]
    assert test_idx == cfg.test_indices() and np.all(np.diff(test_idx) > 1)  # interleaved
    lo, hi = np.asarray(meta["scene_box"])
    for f in meta["frames"]:
        c2w = np.asarray(f["transform_matrix"])
        assert c2w.shape == (4, 4) and np.all(c2w[:3, 3] > lo) and np.all(c2w[:3, 3] < hi)
        rgb = np.asarray(Image.open(scene / f["file_path"]))
        assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
        for key, dtype in (("semantics_path", np.uint8), ("gt_semantics_path", np.uint8), ("instance_path", np.uint16),
                           ("gt_instance_path", np.uint16), ("depth_file_path", np.uint16)):
            arr = np.asarray(Image.open(scene / f[key]))
            assert arr.shape == (h, w) and arr.dtype == dtype, key
        depth = np.asarray(Image.open(scene / f["depth_file_path"])) * meta["depth_unit_scale_factor"]
        assert depth.min() > 0.1 and depth.max() < np.linalg.norm(hi - lo)
        with np.load(scene / f["probabilities_path"]) as npz:
            prob, conf = npz["probability"], npz["confidence"]
        assert prob.dtype == np.float16 and prob.shape == (h, w, CS.num_classes)
        assert conf.dtype == np.float16 and conf.shape == (h, w)
        np.testing.assert_allclose(prob.astype(np.float32).sum(-1), 1.0, atol=1e-2)
        assert conf.min() >= 0 and conf.max() <= 1
    noise = json.loads((scene / "noise.json").read_text())
    assert noise["knobs"]["p_confuse"] == cfg.noise.p_confuse and "seed" in noise["knobs"]
    for key in ("confused_segment_rate", "missed_segment_rate", "split_segment_rate", "merged_segment_rate",
                "pixel_class_error", "void_fraction"):
        assert 0.0 <= noise["measured"][key] <= 1.0
    assert noise["counts"]["frames"] == cfg.num_views
    assert [p.name for p in scene.parent.iterdir()] == ["scene"]  # no temporary folders left behind


def test_generation_is_deterministic(tmp_path: Path, synth_tiny_scene: Path) -> None:
    again = generate_scene(preset("tiny"), tmp_path / "again")
    for sub in ("semantics", "instance", "gt_instance", "images"):
        a = np.asarray(Image.open(synth_tiny_scene / sub / "frame_00003.png"))
        b = np.asarray(Image.open(again / sub / "frame_00003.png"))
        np.testing.assert_array_equal(a, b)


def test_refuses_non_empty_output_unless_overwrite(tmp_path: Path) -> None:
    cfg = replace(preset("tiny"), num_train=3, num_test=1)
    out = tmp_path / "scene"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(PliftDataError, match="not empty"):
        generate_scene(cfg, out)
    assert (out / "keep.txt").exists()
    generate_scene(cfg, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "transforms.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]


def test_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = synth_writer.render_view

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(synth_writer, "render_view", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        generate_scene(replace(preset("tiny"), num_train=3, num_test=1), tmp_path / "scene")
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_scene(tmp_path: Path) -> None:
    out = tmp_path / "cli_scene"
    exe = Path(sys.executable).with_name("plift-synth")
    args = ["--preset", "tiny", "--output", str(out), "--seed", "5", "--num-train", "4", "--num-test", "2",
            "--noise.p-confuse", "0.25"]
    if exe.exists():
        proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert "confused_segment_rate" in proc.stdout
    else:  # pragma: no cover - console script not installed
        assert synth_cli.main(args) == 0
    meta = json.loads((out / "transforms.json").read_text())
    assert len(meta["frames"]) == 6 and meta["w"] == 64
    assert meta["synthetic"]["config"]["seed"] == 5
    assert json.loads((out / "noise.json").read_text())["knobs"]["p_confuse"] == 0.25
    # a second run into the same folder is refused without --overwrite, with a clear message and exit code 2
    assert synth_cli.main(args) == 2
    assert synth_cli.main([*args, "--overwrite"]) == 0


def test_cli_preset_supplies_defaults() -> None:
    args = synth_cli.parse_args(["--preset", "bench", "--output", "x", "--noise.p-merge", "0.5"])
    assert (args.config.width, args.config.num_train, args.config.num_test) == (320, 120, 30)
    assert args.config.noise.p_merge == 0.5 and args.preset == "bench"
    assert synth_cli.parse_args(["--output", "x"]).config.width == 160


def test_preview_composite(synth_tiny_scene: Path, tmp_path: Path) -> None:
    from plift_ns.synthetic.preview import save_preview

    out = save_preview(synth_tiny_scene, tmp_path / "preview.png", frames=[0, 5], scale=1)
    img = np.asarray(Image.open(out))
    cfg = preset("tiny")
    title, gap = 14, 4  # side_by_side defaults: one title row above the first row of panels
    assert img.shape == (2 * cfg.height + title, 5 * cfg.width + 4 * gap, 3)
