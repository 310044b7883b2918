"""plift-wild: photos → COLMAP poses (ns-process-data) → a plift-ns scene; its checks, pieces and the whole path on a
tiny generated room (skipped where COLMAP is not installed: scripts/test.sh installs it where apt-get can)."""

from __future__ import annotations

import json
import shutil
import stat
from ctypes.util import find_library
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plift_ns.errors import PliftDataError
from plift_ns.wild.align import trajectory_error, umeyama
from plift_ns.wild.colmap import Registration, check_registration, matching_for
from plift_ns.wild.photos import check_photos
from plift_ns.wild.scene import use_downscale
from plift_ns.wild.scene_box import box_from_points, read_ply_points


def _photo(path: Path, size=(64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def test_photos_of_mixed_sizes_are_refused_naming_one(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"p{i}.jpg")
    _photo(tmp_path / "portrait.jpg", size=(48, 64))
    with pytest.raises(PliftDataError, match=r"2 different sizes \(64x48: 3, 48x64: 1\).*portrait.jpg is 48x64"):
        check_photos(tmp_path)


def test_photo_folder_missing_or_too_small(tmp_path):
    with pytest.raises(PliftDataError, match="photo folder not found"):
        check_photos(tmp_path / "nope")
    _photo(tmp_path / "a.png")
    with pytest.raises(PliftDataError, match="1 photos found"):
        check_photos(tmp_path)


def test_photo_order_and_names_follow_ns_process_data(tmp_path):
    for name in ("b.png", "a.png", "sub/c.jpg"):
        _photo(tmp_path / name)
    photos = check_photos(tmp_path)
    assert photos.frame_names() == {"a.png": "frame_00001.png", "b.png": "frame_00002.png",
                                    "sub/c.jpg": "frame_00003.jpg"}


def test_too_few_registered_photos_is_an_error_naming_them():
    names = {f"p{i}.jpg": f"frame_{i + 1:05d}.jpg" for i in range(10)}
    reg = Registration(registered=list(names.values())[:6], missing=list(names.values())[6:], total=10)
    with pytest.raises(PliftDataError, match=r"registered 6 of 10 photos \(60% < 80%\); not placed: p6.jpg"):
        check_registration(reg, names, 0.8, Path("photos"))
    check_registration(reg, names, 0.5, Path("photos"))
    assert matching_for("auto", 50) == "exhaustive" and matching_for("auto", 1000) == "sequential"


def test_umeyama_recovers_a_similarity_and_the_trajectory_error():
    rng = np.random.default_rng(1)
    ref = np.stack([np.eye(4) for _ in range(20)])
    ref[:, :3, 3] = rng.uniform(-2, 2, (20, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.linalg.det(q))
    est = ref.copy()
    est[:, :3, :3] = rot.T @ ref[:, :3, :3]
    est[:, :3, 3] = (ref[:, :3, 3] - 0.3) @ rot / 2.5  # est = sim^-1(ref)
    sim, err = trajectory_error(est, ref)
    assert sim.scale == pytest.approx(2.5) and err.rmse < 1e-9 and err.rotation_deg_max < 1e-5
    back = sim.inverse().apply(sim.apply(est[:, :3, 3]))
    assert np.allclose(back, est[:, :3, 3])
    with pytest.raises(ValueError):
        umeyama(np.zeros((2, 3)), np.zeros((2, 3)))


def test_scene_box_from_sparse_points_ignores_outliers(tmp_path):
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-1, 1, (2000, 3)), [[500.0, 0, 0], [0, -800.0, 0]]])
    ply = tmp_path / "sparse_pc.ply"
    header = ("ply\nformat ascii 1.0\nelement vertex {}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uint8 red\nproperty uint8 green\nproperty uint8 blue\nend_header\n").format(len(pts))
    ply.write_text(header + "".join(f"{x:f} {y:f} {z:f} 1 2 3\n" for x, y, z in pts))
    read = read_ply_points(ply)
    assert read.shape == (2002, 3)
    box = np.asarray(box_from_points(read, np.array([[0.0, 0.0, 1.5]])))
    assert np.all(box[0] > -1.2) and np.all(box[1][:2] < 1.2) and box[1][2] >= 1.5


def test_downscale_folder_and_intrinsics(tmp_path):
    _photo(tmp_path / "images_2" / "frame_00001.png", size=(32, 24))
    meta = {"w": 64, "h": 48, "fl_x": 50.0, "fl_y": 52.0, "cx": 32.5, "cy": 23.5, "k1": 0.1,
            "frames": [{"file_path": "images/frame_00001.png"}]}
    out = use_downscale(meta, tmp_path, 2)
    assert out["frames"][0]["file_path"] == "images_2/frame_00001.png"
    assert (out["w"], out["h"], out["fl_x"], out["cx"], out["cy"], out["k1"]) == (32, 24, 25.0, 16.25, 11.75, 0.1)
    with pytest.raises(PliftDataError, match="no images_4/"):
        use_downscale(meta, tmp_path, 4)


def _fake_colmap(tmp_path: Path) -> str:
    script = tmp_path / "bin" / "colmap"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho 'COLMAP 3.8 -- Structure-from-Motion (Commit Unknown without CUDA)'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_missing_labeller_fails_before_colmap_and_writes_nothing(tmp_path, capsys):
    from plift_ns.wild.cli import main

    for i in range(3):
        _photo(tmp_path / "photos" / f"p{i}.png")
    out = tmp_path / "scene"
    code = main(["--data", str(tmp_path / "photos"), "--output-dir", str(out), "--colmap-cmd", _fake_colmap(tmp_path),
                 "--model", str(tmp_path / "no-model")])
    text = capsys.readouterr().out
    assert code == 2 and "plift-wild:" in text and "model folder not found" in text
    assert not out.exists()
    code = main(["--data", str(tmp_path / "photos"), "--output-dir", str(out), "--colmap-cmd", "no-such-colmap"])
    assert code == 2 and "COLMAP not found" in capsys.readouterr().out and not out.exists()


def _fake_process_data(gt: Path, out: Path, keep: int) -> Path:
    """What ns-process-data leaves for the first ``keep`` photos of ``gt`` (poses: the generator's, y/z swapped as
    its applied_transform does), without running COLMAP."""
    meta = json.loads((gt / "transforms.json").read_text())
    swap = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])
    frames, centres = [], []
    for i, frame in enumerate(sorted(meta["frames"], key=lambda f: f["file_path"])):
        name = f"frame_{i + 1:05d}.png"
        for folder, factor in (("images", 1), ("images_2", 2)):
            (out / folder).mkdir(parents=True, exist_ok=True)
            with Image.open(gt / frame["file_path"]) as im:
                im.resize((im.width // factor, im.height // factor)).save(out / folder / name)
        if i < keep:
            pose = swap @ np.asarray(frame["transform_matrix"])
            frames.append({"file_path": f"images/{name}", "transform_matrix": pose.tolist(), "colmap_im_id": i + 1})
            centres.append(pose[:3, 3])
    cam = {k: meta[k] for k in ("w", "h", "fl_x", "fl_y", "cx", "cy")}
    (out / "transforms.json").write_text(json.dumps({
        **cam, "k1": 0.01, "k2": 0.0, "p1": 0.0, "p2": 0.0, "camera_model": "OPENCV", "frames": frames,
        "applied_transform": swap[:3].tolist(), "ply_file_path": "sparse_pc.ply"}))
    pts = np.random.default_rng(0).uniform(-2, 2, (200, 3)) + np.mean(centres, axis=0)
    (out / "sparse_pc.ply").write_text(
        f"ply\nformat ascii 1.0\nelement vertex {len(pts)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uint8 red\nproperty uint8 green\nproperty uint8 blue\nend_header\n"
        + "".join(f"{x:f} {y:f} {z:f} 0 0 0\n" for x, y, z in pts))
    return out


def test_process_data_output_becomes_a_scene_and_too_few_poses_are_refused(tmp_path, capsys):
    """The stages after COLMAP on an ns-process-data-shaped folder (no COLMAP needed): downscale folder, scene box from
    the sparse points, labels by photo name, the dataparser reads it; a capture with too few poses writes nothing."""
    from plift_ns.data.dataparser import PanopticDataParserConfig
    from plift_ns.synthetic import SynthConfig, generate_scene
    from plift_ns.wild.cli import main

    gt = generate_scene(SynthConfig(width=64, height=48, num_train=6, num_test=2), tmp_path / "gt")
    photos = tmp_path / "photos"
    shutil.copytree(gt / "images", photos)
    few = _fake_process_data(gt, tmp_path / "few", keep=2)
    out = tmp_path / "scene"
    args = ["--data", str(photos), "--output-dir", str(out), "--labels-from", str(gt), "--downscale", "2"]
    assert main(args + ["--process-data-dir", str(few)]) == 2
    text = capsys.readouterr().out
    assert "registered 2 of 8 photos (25% < 80%)" in text and "frame_00002.png" in text and not out.exists()

    done = _fake_process_data(gt, tmp_path / "done", keep=7)
    assert main(args + ["--process-data-dir", str(done)]) == 0
    meta = json.loads((out / "transforms.json").read_text())
    assert meta["plift_wild"]["scene_box_from"] == "sparse points" and meta["plift_wild"]["registered"] == 7
    assert (meta["w"], meta["h"], meta["fl_x"]) == (32, 24, pytest.approx(json.loads(
        (gt / "transforms.json").read_text())["fl_x"] / 2))
    parser = PanopticDataParserConfig(data=out).setup()
    train, test = parser.get_dataparser_outputs("train"), parser.get_dataparser_outputs("test")
    assert len(train.image_filenames) + len(test.image_filenames) == 7
    assert train.cameras.distortion_params is not None and int(train.cameras.width[0]) == 32
    with Image.open(train.metadata["semantics_filenames"][0]) as im:
        assert im.size == (32, 24)


@pytest.mark.skipif(shutil.which("colmap") is None or find_library("usb-1.0") is None,
                    reason="COLMAP or libusb (for ns-process-data's open3d) is not installed; scripts/test.sh installs "
                    "Debian's colmap and libusb-1.0-0 where apt-get is usable")
def test_photos_only_room_end_to_end(tmp_path):
    """A generated room's photos alone → plift-wild (COLMAP) with the generator's labels attached → a scene the
    dataparser reads; poses close to the generator's after a similarity alignment."""
    from plift_ns.bench.wild import ALIGNED_TEST, TRUE_POSES, pose_report, write_variants
    from plift_ns.data.dataparser import PanopticDataParserConfig
    from plift_ns.synthetic import SynthConfig, generate_scene
    from plift_ns.wild.cli import main

    # 48 photos: with 24 the views overlap too little and COLMAP places 10-12 of them, differently from run to run
    # (ATE 1-7% of the room); with 48 it placed 47/48 three times out of three, ATE 0.7-1.1%
    gt = generate_scene(SynthConfig(width=320, height=240, num_train=42, num_test=6, seed=0), tmp_path / "gt")
    photos = tmp_path / "photos"
    photos.mkdir()
    for image in (gt / "images").iterdir():
        shutil.copy(image, photos / image.name)
    # COLMAP 3.8 seeds the random generator of each worker thread (two-view RANSAC in matching, the mapper's own
    # thread) from the clock, so no option makes a reconstruction repeat. With its default threads 2 of 5 runs on
    # 2026-12-02 had an RMSE trajectory error of 8.9% and 10.7% of the room, and on one thread per stage about 1 run
    # in 6 still reached 11% (CI). The RMSE follows the worst-placed photos; the median camera error (0.4-0.7% of
    # the room in 7 logged runs, threaded or not) and rotation error (0.6-2.1 deg) follow the conversion and the
    # alignment this path owns, which a wrong pose convention would put far above the bounds below
    colmap = tmp_path / "colmap-one-thread"
    colmap.write_text('#!/bin/sh\ncase "$1" in\n  mapper) exec colmap "$@" --Mapper.num_threads 1 ;;\n'
                      '  *_matcher) exec colmap "$@" --SiftMatching.num_threads 1 ;;\n'
                      '  feature_extractor) exec colmap "$@" --SiftExtraction.num_threads 1 ;;\n  *) exec colmap "$@" ;;\nesac\n')
    colmap.chmod(0o755)
    scene = tmp_path / "scene"
    code = main(["--data", str(photos), "--output-dir", str(scene), "--labels-from", str(gt), "--downscale", "2",
                 "--min-registered", "0.25", "--colmap-cmd", str(colmap)])
    assert code == 0
    meta = json.loads((scene / "transforms.json").read_text())
    record = meta["plift_wild"]
    # Mostly 47 of 48 placed; one CI run on 2026-12-02 kept a model of 30 (COLMAP split the room in two): the path
    # must still hold for the photos it placed
    assert record["registered"] >= 24 and record["scene_box_from"] == "sparse points"
    assert meta["camera_model"] == "OPENCV" and "applied_transform" in meta and (meta["w"], meta["h"]) == (160, 120)
    assert all(f["file_path"].startswith("images_2/") for f in meta["frames"])
    assert meta["test_filenames"] and meta["panoptic_classes"] == "scannet21"

    poses = pose_report(gt, scene)
    write_variants(scene, json.loads((gt / "transforms.json").read_text()), poses.pop("_similarity"))
    assert poses["ate_median_m"] < 0.02 * poses["room_size_m"] and poses["rotation_err_median_deg"] < 5.0, poses
    for data in (scene, scene / TRUE_POSES, scene / ALIGNED_TEST):
        parser = PanopticDataParserConfig(data=data).setup()
        train, test = parser.get_dataparser_outputs("train"), parser.get_dataparser_outputs("test")
        assert len(train.image_filenames) + len(test.image_filenames) == record["registered"]
        assert train.metadata["semantics_filenames"][0].exists()
        assert int(train.cameras.width[0]) == 160 and float(train.scene_box.aabb.abs().max()) <= 1.0 + 1e-6
        # COLMAP's OPENCV camera keeps its distortion; the generator's cameras (true poses, aligned test) are pinhole
        assert (train.cameras.distortion_params is None) == (data == scene / TRUE_POSES)
        assert (test.cameras.distortion_params is None) == (data != scene)
