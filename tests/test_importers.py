"""plift-import: small scenes written by the tests in each source layout (official Panoptic Lifting release,
Semantic-NeRF Replica renders, ScanNet exports) from exact synthetic renders, imported and read back through the
dataparser. Checks reprojection through the original and the imported cameras, labels, splits, GT kept out of
training, clear errors for bad layouts, the restricted pickle loader, distortion from ns-process-data, and one short
train + evaluate run on an imported scene."""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

from plift_ns.data.class_maps import ClassMap
from plift_ns.data.classes import load_class_set
from plift_ns.data.dataparser import PanopticDataParserConfig
from plift_ns.errors import PliftDataError
from plift_ns.importers.cli import main as plift_import
from plift_ns.importers.panoptic_lifting import PanopticLiftingImport, import_panoptic_lifting
from plift_ns.importers.poses import opencv_to_opengl
from plift_ns.importers.replica import ReplicaImport, import_replica
from plift_ns.importers.safe_pickle import load_plain_pickle
from plift_ns.importers.scannet import ScanNetImport, import_scannet
from plift_ns.importers.writer import interleaved_test_indices
from plift_ns.synthetic import Intrinsics, NoiseConfig, build_room, make_trajectory, render_view, simulate_labels

W, H, N = 64, 48, 8
CS = load_class_set("scannet21")
VOID = CS.void_id
NYU40 = {"wall": 1, "floor": 2, "cabinet": 3, "bed": 4, "chair": 5, "sofa": 6, "table": 7, "door": 8, "window": 9,
         "counter": 12, "shelves": 15, "curtain": 16, "ceiling": 22, "refrigerator": 24, "television": 25, "person": 31,
         "toilet": 33, "sink": 34, "lamp": 35, "bag": 37, "otherprop": 40}
REPLICA_NAMES = {"counter": "countertop", "shelves": "shelf", "television": "tv-screen", "otherprop": "vase"}


# ------------------------------------------------------------------------------------------------ fixtures


def k_opencv(intr: Intrinsics) -> np.ndarray:
    """OpenCV camera matrix (pixel centres at integers) of a synthetic (nerfstudio-convention) camera."""
    return np.array([[intr.fl_x, 0.0, intr.cx - 0.5], [0.0, intr.fl_y, intr.cy - 0.5], [0.0, 0.0, 1.0]])


def write_matrix(path: Path, m: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(f"{v:.10f}" for v in row) for row in m) + "\n")


def save_png(path: Path, array: np.ndarray, dtype=np.uint8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array).astype(dtype)).save(path)


@pytest.fixture(scope="module")
def room():
    return build_room(0)


@pytest.fixture(scope="module")
def poses(room) -> List[np.ndarray]:
    """Camera-to-world (OpenGL) of N views inside the room."""
    return make_trajectory(room, N, np.random.default_rng([0, 1]))


def render_all(room, poses, intr: Intrinsics):
    return [render_view(room, c2w, intr) for c2w in poses]


@pytest.fixture(scope="module")
def official_src(room, poses, tmp_path_factory) -> Tuple[Path, Intrinsics, list]:
    """An official Panoptic Lifting layout: asymmetric intrinsics, m2f labels + 22-channel probabilities, GT, splits."""
    intr = Intrinsics(fl_x=56.0, fl_y=54.0, cx=31.0, cy=23.5, w=W, h=H)
    views = render_all(room, poses, intr)
    src = tmp_path_factory.mktemp("official") / "scene0000_00"
    rng = np.random.default_rng(5)
    k4 = np.eye(4)
    k4[:3, :3] = k_opencv(intr)
    write_matrix(src / "intrinsic" / "intrinsic_color.txt", k4)
    for i, (c2w, view) in enumerate(zip(poses, views)):
        (src / "color").mkdir(parents=True, exist_ok=True)
        Image.fromarray(view.rgb).save(src / "color" / f"{i}.jpg", quality=95)
        write_matrix(src / "pose" / f"{i}.txt", opencv_to_opengl(c2w))
        labels = simulate_labels(view.semantics, view.instance, CS, NoiseConfig(), rng)
        official = lambda sem: np.where(sem == VOID, 0, sem.astype(np.int64) + 1)  # noqa: E731
        save_png(src / "m2f_semantics" / f"{i}.png", official(labels.semantics))
        save_png(src / "m2f_instance" / f"{i}.png", labels.instance, np.uint16)
        prob = np.concatenate([np.zeros((H, W, 1), np.float32), labels.probability], axis=-1)
        (src / "m2f_probabilities").mkdir(exist_ok=True)
        np.savez_compressed(src / "m2f_probabilities" / f"{i}.npz", probability=prob.astype(np.float16),
                            confidence=labels.confidence.astype(np.float16))
        save_png(src / "rs_semantics" / f"{i}.png", official(view.semantics))
        save_png(src / "rs_instance" / f"{i}.png", view.instance, np.uint16)
    (src / "splits.json").write_text(json.dumps({"train": ["0", "1", "3", "4", "6", "7"], "test": ["2", "5"]}))
    data = {"num_semantic_classes": 22, "fg_classes": [i + 1 for i in CS.thing_ids],
            "bg_classes": [0] + [i + 1 for i in CS.stuff_ids],
            "instance_to_semantic": {torch.tensor(1): torch.tensor(4), 2: np.int64(5)}}
    with open(src / "segmentation_data.pkl", "wb") as f:
        pickle.dump(data, f)
    return src, intr, views


@pytest.fixture(scope="module")
def replica_src(room, poses, tmp_path_factory) -> Tuple[Path, Intrinsics, list]:
    """A Semantic-NeRF Replica sequence: hfov 90 renders, Replica class ids with an info_semantic.json beside it."""
    intr = Intrinsics.from_fov(W, H, 90.0)
    views = render_all(room, poses, intr)
    root = tmp_path_factory.mktemp("replica")
    src = root / "room_0" / "Sequence_1"
    ids = {c: 10 + c for c in range(CS.num_classes)}
    info = {"classes": [{"id": ids[c], "name": REPLICA_NAMES.get(n, n)} for c, n in enumerate(CS.names)]}
    (root / "semantic_info" / "room_0").mkdir(parents=True)
    (root / "semantic_info" / "room_0" / "info_semantic.json").write_text(json.dumps(info))
    rows = []
    for i, (c2w, view) in enumerate(zip(poses, views)):
        (src / "rgb").mkdir(parents=True, exist_ok=True)
        Image.fromarray(view.rgb).save(src / "rgb" / f"rgb_{i}.png")
        save_png(src / "depth" / f"depth_{i}.png", np.rint(view.depth * 1000.0), np.uint16)
        sem = np.vectorize(lambda s: 0 if s == VOID else ids[int(s)])(view.semantics)
        save_png(src / "semantic_class" / f"semantic_class_{i}.png", sem)
        obj = np.where(view.instance > 0, view.instance, np.where(view.semantics == VOID, 0, 100 + view.semantics))
        save_png(src / "semantic_instance" / f"semantic_instance_{i}.png", obj, np.uint16)
        rows.append(" ".join(f"{v:.10f}" for v in opencv_to_opengl(c2w).reshape(-1)))
    (src / "traj_w_c.txt").write_text("\n".join(rows) + "\n")
    return src, intr, views


@pytest.fixture(scope="module")
def scannet_src(room, poses, tmp_path_factory) -> Tuple[Path, Intrinsics, list]:
    """A ScanNet export: 128x96 colour, 64x48 NYU40 labels/instances/depth, one frame with an inf pose."""
    intr = Intrinsics(fl_x=52.0, fl_y=50.0, cx=33.0, cy=24.5, w=W, h=H)
    color_intr = Intrinsics(2 * intr.fl_x, 2 * intr.fl_y, 2 * intr.cx, 2 * intr.cy, 2 * W, 2 * H)
    views = render_all(room, poses, intr)
    src = tmp_path_factory.mktemp("scannet") / "scene0001_00"
    k4 = np.eye(4)
    k4[:3, :3] = k_opencv(color_intr)
    write_matrix(src / "intrinsic" / "intrinsic_color.txt", k4)
    k4[:3, :3] = k_opencv(intr)
    write_matrix(src / "intrinsic" / "intrinsic_depth.txt", k4)
    nyu = np.array([NYU40[n] for n in CS.names] + [0] * (256 - CS.num_classes))
    nyu[VOID] = 0
    for i, (c2w, view) in enumerate(zip(poses, views)):
        (src / "color").mkdir(parents=True, exist_ok=True)
        Image.fromarray(render_view(room, c2w, color_intr).rgb).save(src / "color" / f"{i}.jpg", quality=95)
        pose = opencv_to_opengl(c2w)
        if i == 5:
            pose = np.full((4, 4), -np.inf)  # ScanNet marks lost tracking with -inf poses
        write_matrix(src / "pose" / f"{i}.txt", pose)
        save_png(src / "label-filt" / f"{i}.png", nyu[view.semantics], np.uint16)
        save_png(src / "instance-filt" / f"{i}.png", view.instance, np.uint8)
        save_png(src / "depth" / f"{i}.png", np.rint(view.depth * 1000.0), np.uint16)
    return src, intr, views


def copy_src(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / src.name))


def parse(scene: Path, split: str = "train"):
    return PanopticDataParserConfig(data=scene).setup().get_dataparser_outputs(split=split)


# ------------------------------------------------------------------------------------------------ checks


def sample_points(view, c2w: np.ndarray, intr: Intrinsics, rng: np.random.Generator, n: int = 6):
    """World points on surfaces seen by a view (from its exact depth)."""
    v, u = np.nonzero(view.depth > 0)
    pick = rng.choice(len(v), size=n, replace=False)
    rays = intr.camera_rays()[v[pick], u[pick]] * view.depth[v[pick], u[pick], None]
    return rays @ c2w[:3, :3].T + c2w[:3, 3]


def project_opencv(points: np.ndarray, c2w_cv: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Pixel coordinates (integer pixel centres) through the ORIGINAL source camera."""
    w2c = np.linalg.inv(c2w_cv)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    assert np.all(cam[:, 2] > 0)
    return np.stack([k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2], k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2]], 1)


def project_imported(points: np.ndarray, outputs, idx: int) -> np.ndarray:
    """Pixel coordinates (nerfstudio: centres at +0.5) through the IMPORTED camera as the dataparser returns it."""
    t = outputs.dataparser_transform.double().numpy()
    normed = (points @ t[:, :3].T + t[:, 3]) * outputs.dataparser_scale
    cams = outputs.cameras
    c2w = cams.camera_to_worlds[idx].double().numpy()
    cam = (normed - c2w[:, 3]) @ c2w[:, :3]
    z = -cam[:, 2]
    assert np.all(z > 0)
    fx, fy, cx, cy = (float(getattr(cams, a)[idx]) for a in ("fx", "fy", "cx", "cy"))
    uv = np.stack([fx * cam[:, 0] / z + cx, -fy * cam[:, 1] / z + cy], 1)
    # and the ray nerfstudio casts through that pixel passes through the point
    rays = cams.generate_rays(camera_indices=idx, coords=torch.from_numpy(uv[:, ::-1].copy()).float())
    o, d = rays.origins.double().numpy(), rays.directions.double().numpy()
    along = np.sum((normed - o) * d, axis=1, keepdims=True)
    np.testing.assert_allclose(o + along * d, normed, atol=2e-4)
    return uv


def check_reprojection(scene: Path, views, poses, render_intr: Intrinsics, k_src: np.ndarray, scale: float,
                       name_to_index) -> int:
    """Every imported camera (train and test) maps surface points where the original OpenCV camera does."""
    rng = np.random.default_rng(0)
    checked = 0
    for split in ("train", "test"):
        out = parse(scene, split)
        for idx, name in enumerate(out.metadata["frame_names"]):
            i = name_to_index(name)
            points = sample_points(views[i], poses[i], render_intr, rng)
            original = project_opencv(points, opencv_to_opengl(poses[i]), k_src)
            imported = project_imported(points, out, idx)
            np.testing.assert_allclose(imported, (original + 0.5) * scale, atol=2e-3)
            checked += 1
    return checked


def frames_by_name(scene: Path) -> Dict[str, dict]:
    meta = json.loads((scene / "transforms.json").read_text())
    return {Path(f["file_path"]).stem: f for f in meta["frames"]}


def read(scene: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(scene / rel)).astype(np.int64)


# ------------------------------------------------------------------------------------------------ official layout


@pytest.fixture(scope="module")
def official_scene(official_src, tmp_path_factory) -> Path:
    src, _, _ = official_src
    return import_panoptic_lifting(PanopticLiftingImport(src=src, dst=tmp_path_factory.mktemp("out") / "official"))


def test_official_poses_reproject(official_scene, official_src, poses) -> None:
    src, intr, views = official_src
    n = check_reprojection(official_scene, views, poses, intr, k_opencv(intr), 1.0, lambda s: int(Path(s).stem))
    assert n == N


def test_official_labels_splits_and_gt(official_scene, official_src) -> None:
    src, _, views = official_src
    meta = json.loads((official_scene / "transforms.json").read_text())
    assert meta["train_filenames"] == [f"images/{i}.jpg" for i in (0, 1, 3, 4, 6, 7)]
    assert meta["test_filenames"] == ["images/2.jpg", "images/5.jpg"]
    assert meta["panoptic_classes"] == "scannet21" and meta["import"]["scene_box_from"] == "camera frusta"
    for stem, f in frames_by_name(official_scene).items():
        m2f = np.asarray(Image.open(src / "m2f_semantics" / f"{stem}.png")).astype(np.int64)
        sem = read(official_scene, f["semantics_path"])
        np.testing.assert_array_equal(sem, np.where(m2f == 0, VOID, m2f - 1))  # official id k -> ScanNet-21 id k-1
        gt = read(official_scene, f["gt_semantics_path"])
        np.testing.assert_array_equal(gt, views[int(stem)].semantics)
        np.testing.assert_array_equal(read(official_scene, f["gt_instance_path"]), views[int(stem)].instance)
        with np.load(official_scene / f["probabilities_path"]) as npz:
            prob, conf = npz["probability"].astype(np.float32), npz["confidence"].astype(np.float32)
        assert prob.shape == (H, W, CS.num_classes)
        np.testing.assert_allclose(prob.sum(-1), 1.0, atol=1e-2)
        labelled = sem != VOID
        assert np.mean(prob.argmax(-1)[labelled] == sem[labelled]) > 0.99
        assert np.all(conf[~labelled] == 0)
        # GT never reaches the training keys
        assert not np.array_equal(sem, gt)
        assert all("rs_" not in str(v) for k, v in f.items() if not k.startswith("gt_"))


def test_official_datamanager_trains_on_machine_labels_only(official_scene) -> None:
    from plift_ns.data.datamanager import PanopticDataManagerConfig

    dm = PanopticDataManagerConfig(data=official_scene, rays_semantic=64, rays_instance=32,
                                   eval_num_rays_per_batch=16).setup(device="cpu", test_mode="val")
    _, batch = dm.next_train(0)
    assert "gt_semantics" not in batch and "gt_instance" not in batch
    assert batch["probability"].shape == (96, CS.num_classes)


def test_restricted_pickle_reads_plain_data_and_tensors(official_src) -> None:
    data = load_plain_pickle(official_src[0] / "segmentation_data.pkl")
    assert data["num_semantic_classes"] == 22 and data["instance_to_semantic"] == {1: 4, 2: 5}


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(official_src, tmp_path: Path) -> None:
    src = copy_src(official_src[0], tmp_path)
    marker = tmp_path / "pwned"
    with open(src / "segmentation_data.pkl", "wb") as f:
        pickle.dump({"num_semantic_classes": 22, "x": _Exploit(marker)}, f)
    with pytest.raises(PliftDataError, match="refusing to unpickle.*system") as err:
        import_panoptic_lifting(PanopticLiftingImport(src=src, dst=tmp_path / "out"))
    assert "segmentation_data.pkl" in str(err.value)
    assert not marker.exists(), "nothing in the pickle may run"
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*")), "no half-written scene is left"
    # skipping the file imports the scene from the class config alone
    out = import_panoptic_lifting(PanopticLiftingImport(src=src, dst=tmp_path / "out", segmentation_data="skip"))
    assert (out / "transforms.json").exists() and not marker.exists()


def test_official_low_resolution_probabilities_and_invalid_masks(official_src, tmp_path: Path) -> None:
    """Probabilities stored smaller than the images are resized (bilinear); invalid/ pixels become void inputs."""
    src = copy_src(official_src[0], tmp_path)
    with np.load(src / "m2f_probabilities" / "1.npz") as npz:
        prob, conf = npz["probability"][::2, ::2], npz["confidence"][::2, ::2]
    np.savez_compressed(src / "m2f_probabilities" / "1.npz", probability=prob, confidence=conf)
    mask = np.zeros((H, W), np.uint8)
    mask[:10, :20] = 255
    (src / "invalid").mkdir()
    Image.fromarray(mask).save(src / "invalid" / "1.jpg")
    out = import_panoptic_lifting(PanopticLiftingImport(src=src, dst=tmp_path / "out", downscale=2))
    f = frames_by_name(out)["1"]
    with np.load(out / f["probabilities_path"]) as npz:
        assert npz["probability"].shape == (H // 2, W // 2, CS.num_classes)
        conf = npz["confidence"]
    sem = read(out, f["semantics_path"])
    assert sem.shape == (H // 2, W // 2) and np.all(sem[:5, :10] == VOID) and np.all(conf[:5, :10] == 0)
    assert Image.open(out / f["file_path"]).size == (W // 2, H // 2)


def test_cli_reports_bad_input_with_exit_code_2(tmp_path: Path, monkeypatch, capsys) -> None:
    from plift_ns.importers.cli import entrypoint

    monkeypatch.setattr("sys.argv", ["plift-import", "scannet", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    with pytest.raises(SystemExit) as err:
        entrypoint()
    assert err.value.code == 2 and "source scan folder not found" in capsys.readouterr().out


def check_bad_layouts(src: Path, frame_file: str, folder: str, import_to) -> None:
    """One frame's ``frame_file`` missing, then its whole ``folder``: each import fails naming what is missing."""
    (src / frame_file).unlink()
    with pytest.raises(PliftDataError, match="frame count mismatch") as err:
        import_to(src)
    assert str(src / frame_file) in str(err.value)
    shutil.rmtree(src / folder)
    with pytest.raises(PliftDataError, match=f"missing folder '{folder}/'"):
        import_to(src)


def test_official_bad_layouts(official_src, tmp_path: Path) -> None:
    check_bad_layouts(copy_src(official_src[0], tmp_path), "pose/3.txt", "pose",
                      lambda src: import_panoptic_lifting(PanopticLiftingImport(src=src, dst=tmp_path / "a")))

    src = copy_src(official_src[0], tmp_path / "b")
    bad = src / "m2f_semantics" / "4.png"
    save_png(bad, np.full((H, W), 30))
    with pytest.raises(PliftDataError, match="label id 30 is not in the class map") as err:
        import_panoptic_lifting(PanopticLiftingImport(src=src, dst=tmp_path / "a"))
    assert str(bad) in str(err.value)

    src = copy_src(official_src[0], tmp_path / "c")
    npz = src / "m2f_probabilities" / "1.npz"
    np.savez_compressed(npz, probability=np.full((H, W, 21), 1 / 21, np.float16), confidence=np.ones((H, W), np.float16))
    with pytest.raises(PliftDataError, match="21 class channels but the class map") as err:
        import_panoptic_lifting(PanopticLiftingImport(src=src, dst=tmp_path / "a"))
    assert str(npz) in str(err.value)

    src = copy_src(official_src[0], tmp_path / "d")
    (src / "splits.json").write_text(json.dumps({"train": ["0", "99"], "test": ["2"]}))
    with pytest.raises(PliftDataError, match="frame '99'.*no image"):
        import_panoptic_lifting(PanopticLiftingImport(src=src, dst=tmp_path / "a"))
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------------------------------------ Replica


@pytest.fixture(scope="module")
def replica_scene(replica_src, tmp_path_factory) -> Path:
    src, _, _ = replica_src
    dst = tmp_path_factory.mktemp("out") / "replica"
    return plift_import(["replica", str(src), str(dst), "--labels-from", "gt-with-noise"])


def test_replica_poses_reproject_and_depth(replica_scene, replica_src, poses) -> None:
    src, intr, views = replica_src
    k = np.array([[W / 2, 0, (W - 1) / 2], [0, W / 2, (H - 1) / 2], [0, 0, 1]])  # Semantic-NeRF: hfov 90
    n = check_reprojection(replica_scene, views, poses, intr, k, 1.0, lambda s: int(Path(s).stem.split("_")[1]))
    assert n == N
    f = frames_by_name(replica_scene)["frame_00003"]
    np.testing.assert_allclose(read(replica_scene, f["depth_file_path"]) / 1000.0, views[3].depth, atol=1e-3)


def test_replica_labels_and_split(replica_scene, replica_src) -> None:
    _, _, views = replica_src
    meta = json.loads((replica_scene / "transforms.json").read_text())
    test_idx = interleaved_test_indices(N)
    assert meta["test_filenames"] == [f"images/frame_{i:05d}.png" for i in test_idx] and len(test_idx) == 2
    assert len(meta["train_filenames"]) == 6 and test_idx == [2, 6]
    for stem, f in frames_by_name(replica_scene).items():
        i = int(stem.split("_")[1])
        gt = read(replica_scene, f["gt_semantics_path"])
        np.testing.assert_array_equal(gt, views[i].semantics)  # Replica ids -> names -> ScanNet-21, 0 -> void
        np.testing.assert_array_equal(read(replica_scene, f["gt_instance_path"]), views[i].instance)
        sem = read(replica_scene, f["semantics_path"])
        assert not np.array_equal(sem, gt) and np.mean(sem == gt) > 0.6, "input labels are simulated, not GT"
    box = np.asarray(meta["scene_box"])
    assert meta["import"]["scene_box_from"] == "depth"
    assert np.all(box[0] <= [-3.5, -3.0, 0.0]) and np.all(box[1] >= [3.5, 3.0, 2.8]), "box holds the room"
    assert np.all(box[0] > [-4.5, -4.0, -1.0]) and np.all(box[1] < [4.5, 4.0, 3.8]), "and not much more"


def test_replica_without_labels_keeps_gt_out_of_training(replica_src, tmp_path: Path) -> None:
    out = import_replica(ReplicaImport(src=replica_src[0], dst=tmp_path / "scene", downscale=2))
    frames = json.loads((out / "transforms.json").read_text())["frames"]
    assert all("semantics_path" not in f and "instance_path" not in f and "gt_semantics_path" in f for f in frames)
    assert Image.open(out / frames[0]["file_path"]).size == (W // 2, H // 2)
    with pytest.raises(PliftDataError, match="lacks 'semantics_path'"):
        parse(out)  # GT is never used as training labels: run plift-labels first


def test_replica_downscale_reprojects(replica_src, poses, tmp_path: Path) -> None:
    src, intr, views = replica_src
    out = import_replica(ReplicaImport(src=src, dst=tmp_path / "scene", downscale=2, labels_from="gt-with-noise"))
    k = np.array([[W / 2, 0, (W - 1) / 2], [0, W / 2, (H - 1) / 2], [0, 0, 1]])
    check_reprojection(out, views, poses, intr, k, 0.5, lambda s: int(Path(s).stem.split("_")[1]))
    f = frames_by_name(out)["frame_00001"]
    assert read(out, f["gt_semantics_path"]).shape == (H // 2, W // 2)


def test_replica_bad_layouts(replica_src, tmp_path: Path) -> None:
    src = Path(shutil.copytree(replica_src[0].parent.parent, tmp_path / "r")) / "room_0" / "Sequence_1"
    traj = src / "traj_w_c.txt"
    traj.write_text("\n".join(traj.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(PliftDataError, match="frame count mismatch: 7 poses") as err:
        import_replica(ReplicaImport(src=src, dst=tmp_path / "a"))
    assert str(traj) in str(err.value)
    shutil.copyfile(replica_src[0] / "traj_w_c.txt", traj)
    bad = src / "semantic_class" / "semantic_class_2.png"
    save_png(bad, np.full((H, W), 250))
    with pytest.raises(PliftDataError, match="label id 250 is not in the class map") as err:
        import_replica(ReplicaImport(src=src, dst=tmp_path / "a"))
    assert str(bad) in str(err.value)
    shutil.rmtree(src / "semantic_instance")
    with pytest.raises(PliftDataError, match="missing folder 'semantic_instance/'"):
        import_replica(ReplicaImport(src=src, dst=tmp_path / "a"))
    assert not (tmp_path / "a").exists()


def test_class_maps_resolve_for_both_class_sets() -> None:
    s31 = load_class_set("scannet31")
    for name in ("nyu40_to_scannet21", "panoptic_lifting_to_scannet21"):
        for cs in (CS, s31):
            lut = ClassMap.load(name).lut(cs)
            assert lut.table[0] == cs.void_id and np.all(lut.table[1:] >= 0)
    nyu = ClassMap.load("nyu40_to_scannet21")
    assert s31.names[nyu.lut(s31).table[18]] == "pillow" and CS.names[nyu.lut(CS).table[18]] == "otherprop"
    assert CS.names[nyu.lut(CS).table[14]] == "table" and CS.names[nyu.lut(CS).table[10]] == "shelves"
    rep = ClassMap.load("replica_to_scannet21").lut(CS)  # built-in id table (no info_semantic.json)
    assert CS.names[rep.table[87]] == "television" and CS.names[rep.table[93]] == "wall" and rep.table[0] == VOID


# ------------------------------------------------------------------------------------------------ ScanNet


@pytest.fixture(scope="module")
def scannet_scene(scannet_src, tmp_path_factory) -> Path:
    src, _, _ = scannet_src
    dst = tmp_path_factory.mktemp("out") / "scannet"
    return import_scannet(ScanNetImport(src=src, dst=dst, labels_from="gt-with-noise"))


def test_scannet_resizes_to_labels_skips_bad_poses_and_reprojects(scannet_scene, scannet_src, poses) -> None:
    src, intr, views = scannet_src
    meta = json.loads((scannet_scene / "transforms.json").read_text())
    assert meta["import"]["skipped_frames"] == ["5"] and len(meta["frames"]) == N - 1
    assert (meta["w"], meta["h"]) == (W, H)
    k_color = np.loadtxt(src / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    # through the original 128x96 colour camera, then the 2x smaller common resolution
    n = check_reprojection(scannet_scene, views, poses, intr, k_color, 0.5, lambda s: int(Path(s).stem))
    assert n == N - 1
    for stem, f in frames_by_name(scannet_scene).items():
        np.testing.assert_array_equal(read(scannet_scene, f["gt_semantics_path"]), views[int(stem)].semantics)
        np.testing.assert_array_equal(read(scannet_scene, f["gt_instance_path"]), views[int(stem)].instance)
        assert Image.open(scannet_scene / f["file_path"]).size == (W, H)
    assert meta["import"]["scene_box_from"] == "depth"


def test_scannet_raw_label_ids_with_tsv(scannet_src, tmp_path: Path) -> None:
    src = copy_src(scannet_src[0], tmp_path)
    raw = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 12: 12, 15: 15, 16: 16, 22: 22, 24: 24, 25: 25,
           31: 31, 33: 33, 34: 34, 35: 35, 37: 37, 40: 40}
    to_raw = {nyu: 1000 + nyu for nyu in raw}
    for p in (src / "label-filt").glob("*.png"):
        nyu = np.asarray(Image.open(p)).astype(np.int64)
        save_png(p, np.vectorize(lambda v: to_raw.get(int(v), 0))(nyu), np.uint16)
    with pytest.raises(PliftDataError, match="not an NYU40 id.*--label-ids scannet"):
        import_scannet(ScanNetImport(src=src, dst=tmp_path / "a"))
    tsv = tmp_path / "scannetv2-labels.combined.tsv"
    tsv.write_text("id\traw_category\tcategory\tcount\tnyu40id\n"
                   + "".join(f"{to_raw[n]}\tc{n}\tc{n}\t1\t{n}\n" for n in raw))
    out = import_scannet(ScanNetImport(src=src, dst=tmp_path / "a", label_ids="scannet", label_map_tsv=tsv,
                                       image_size="color"))
    f = frames_by_name(out)["0"]
    assert read(out, f["gt_semantics_path"]).shape == (2 * H, 2 * W)
    small = np.asarray(Image.fromarray(read(out, f["gt_semantics_path"]).astype(np.uint8)).resize((W, H), 0))
    assert np.mean(small == scannet_src[2][0].semantics) > 0.9


def test_scannet_bad_layouts(scannet_src, tmp_path: Path) -> None:
    check_bad_layouts(copy_src(scannet_src[0], tmp_path), "instance-filt/2.png", "label-filt",
                      lambda src: import_scannet(ScanNetImport(src=src, dst=tmp_path / "a")))
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------------------------------------ in-the-wild


def test_dataparser_accepts_ns_process_data_distortion(official_scene, tmp_path: Path) -> None:
    """ns-process-data writes OPENCV with k1, k2, p1, p2, an applied_transform and no scene_box."""
    scene = Path(shutil.copytree(official_scene, tmp_path / "scene"))
    meta = json.loads((scene / "transforms.json").read_text())
    meta.update(k1=-0.05, k2=0.01, p1=0.001, p2=-0.002, applied_transform=np.eye(4)[:3].tolist())
    meta.pop("scene_box")
    for f in meta["frames"]:
        f["colmap_im_id"] = 1
    (scene / "transforms.json").write_text(json.dumps(meta))
    out = parse(scene)
    params = out.cameras.distortion_params
    assert params is not None and params.shape == (6, 6)
    np.testing.assert_allclose(params[0].numpy(), [-0.05, 0.01, 0.0, 0.0, 0.001, -0.002], atol=1e-7)
    undistorted = parse(official_scene).cameras.generate_rays(camera_indices=0, coords=torch.tensor([[2.0, 3.0]]))
    distorted = out.cameras.generate_rays(camera_indices=0, coords=torch.tensor([[2.0, 3.0]]))
    assert not torch.allclose(distorted.directions, undistorted.directions, atol=1e-4), "distortion is applied"
    meta["camera_model"] = "PINHOLE"
    (scene / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(PliftDataError, match="PINHOLE cannot have distortion"):
        parse(scene)


# ------------------------------------------------------------------------------------------------ end to end


def test_train_and_evaluate_an_imported_scene(replica_scene, tmp_path: Path, tiny_trainer, run) -> None:
    from plift_ns.eval.cli import EvalModel

    config = tiny_trainer(replica_scene, tmp_path / "runs", steps=8)
    config.pipeline.model.upsampling_iters, config.pipeline.model.instance_loss_start_step = (4,), 3
    config.steps_per_eval_batch = 100
    run(config)
    saved = config.get_base_dir() / "config.yml"
    results = EvalModel(load_config=saved, output_path=tmp_path / "metrics.json", max_views=2, save_images=False).main()
    for row in ("lifted", "labels_2d"):
        assert 0.0 <= results[row]["PQ_scene"] <= 1.0 and 0.0 <= results[row]["mIoU"] <= 1.0
        assert results[row]["num_frames"] == 2
    assert math.isfinite(results["lifted"]["PSNR"])
    assert results["labels_2d"]["mIoU"] > 0.5, "the simulated input labels are scored against the imported GT"

