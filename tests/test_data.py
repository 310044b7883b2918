"""Data contract: dataparser, dataset, R_S/R_I datamanager, and one clear error per kind of bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from plift_ns.data.datamanager import PanopticDataManagerConfig
from plift_ns.data.dataparser import PanopticDataParserConfig
from plift_ns.errors import PliftDataError


def parse(scene: Path, split: str = "train"):
    return PanopticDataParserConfig(data=scene).setup().get_dataparser_outputs(split=split)


def datamanager(scene: Path, rays_semantic: int = 64, rays_instance: int = 32, **overrides):
    config = PanopticDataManagerConfig(
        data=scene, rays_semantic=rays_semantic, rays_instance=rays_instance, eval_num_rays_per_batch=16, **overrides
    )
    return config.setup(device="cpu", test_mode="val")


def edit_transforms(scene: Path, edit) -> None:
    path = scene / "transforms.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_dataparser_reads_split_classes_and_normalises(tiny_scene: Path) -> None:
    train, test = parse(tiny_scene, "train"), parse(tiny_scene, "test")
    meta = json.loads((tiny_scene / "transforms.json").read_text())
    assert len(train.image_filenames) == len(meta["train_filenames"]) == 12
    assert len(test.image_filenames) == len(meta["test_filenames"]) == 4
    assert not set(map(str, train.image_filenames)) & set(map(str, test.image_filenames))
    assert train.metadata["class_set"].num_classes == 21
    # the scene box maps into [-1, 1]^3 and every camera lies inside it
    aabb = train.scene_box.aabb
    assert aabb.abs().max() <= 1.0 + 1e-6 and aabb.abs().max() >= 1.0 - 1e-6
    positions = train.cameras.camera_to_worlds[:, :, 3]
    assert torch.all(positions >= aabb[0]) and torch.all(positions <= aabb[1])
    # the transform maps back to the original metres
    original = np.array(meta["frames"][0]["transform_matrix"])[:3, 3]
    first = meta["frames"][0]["file_path"]
    names = [str(p) for p in train.image_filenames + test.image_filenames]
    cams = torch.cat([train.cameras.camera_to_worlds, test.cameras.camera_to_worlds])
    mapped = cams[[n.endswith(first) for n in names].index(True), :, 3].numpy()
    back = mapped / train.dataparser_scale - train.dataparser_transform[:, 3].numpy()
    np.testing.assert_allclose(back, original, atol=1e-4)


def test_datamanager_batch_has_rs_and_ri_from_one_image(tiny_scene: Path) -> None:
    dm = datamanager(tiny_scene, rays_semantic=256, rays_instance=128)
    ray_bundle, batch = dm.next_train(0)
    assert batch["num_rays_semantic"] == 256
    assert batch["image"].shape == (384, 3) and batch["semantics"].shape == (384,)
    assert batch["instance"].shape == (384,) and batch["confidence"].shape == (384,)
    assert batch["probability"].shape == (384, 21)
    assert torch.allclose(batch["probability"].sum(-1), torch.ones(384), atol=1e-2)
    assert ray_bundle.origins.shape == (384, 3)
    images = batch["indices"][:, 0]
    assert images[256:].unique().numel() == 1, "R_I rays must all come from one image"
    assert images[:256].unique().numel() > 1, "R_S rays are drawn over all images"
    assert ray_bundle.metadata["instance_ray"][:, 0].tolist() == [False] * 256 + [True] * 128
    # R_I pixels are distinct pixels of that image; labels match the label files
    assert batch["indices"][256:].unique(dim=0).shape[0] == 128
    assert "gt_semantics" not in batch and "gt_instance" not in batch, "ground truth must never reach training"



@pytest.mark.parametrize("balance", [0.0, 0.5, 1.0])
def test_class_balanced_rays_follow_the_label_class_shares(tiny_scene: Path, balance: float) -> None:
    """R_S draws a pixel with probability ∝ share(class)^(−balance): label class c (void included) is drawn with
    frequency ∝ count_c^(1 − balance), and pixels within a class uniformly."""
    dm = datamanager(tiny_scene, class_balance=balance)
    labels = dm.train_pixels.semantics.numpy().astype(np.int64)
    counts = np.bincount(labels.reshape(-1), minlength=256).astype(float)
    present = counts > 0
    expected = np.where(present, counts, 0) ** (1.0 - balance) * present
    expected /= expected.sum()
    torch.manual_seed(0)
    drawn = dm.train_pixels.sample_all(400_000)
    classes = labels[drawn[:, 0].numpy(), drawn[:, 1].numpy(), drawn[:, 2].numpy()]
    observed = np.bincount(classes, minlength=256) / len(classes)
    assert np.abs(observed - expected).max() < 0.01, (observed[present], expected[present])
    assert observed[~present].sum() == 0
    # uniform within the most common class: each image holds its share of that class's draws
    top = int(np.argmax(counts))
    per_image = (labels == top).reshape(len(labels), -1).sum(-1) / counts[top]
    drawn_images = np.bincount(drawn[:, 0].numpy()[classes == top], minlength=len(labels)) / (classes == top).sum()
    assert np.abs(drawn_images - per_image).max() < 0.02


def test_instance_rays_start_after_warmup(tiny_scene: Path) -> None:
    dm = datamanager(tiny_scene)
    dm.instance_rays_from_step = 10
    assert dm.next_train(0)[1]["image"].shape[0] == 64
    assert dm.next_train(10)[1]["image"].shape[0] == 96


def test_batch_labels_match_files(tiny_scene: Path) -> None:
    dm = datamanager(tiny_scene)
    _, batch = dm.next_train(0)
    c, y, x = batch["indices"][0].tolist()
    name = dm.train_dataset.image_filenames[c].name
    sem = np.asarray(Image.open(tiny_scene / "semantics" / name))[y, x]
    expected = -1 if sem == 255 else int(sem)
    assert int(batch["semantics"][0]) == expected
    inst = np.asarray(Image.open(tiny_scene / "instance" / name))[y, x]
    assert int(batch["instance"][0]) == int(inst)


# ------------------------------------------------------------------------------------------------ bad input


def first_label(scene: Path, folder: str) -> Path:
    return sorted((scene / folder).glob("*.png"))[0]


def expect_data_error(load, victim: Path, *words: str) -> None:
    """``load()`` raises one :class:`PliftDataError` that names ``victim`` and says each of ``words``."""
    with pytest.raises(PliftDataError, match=re.escape(victim.name)) as err:
        load()
    for word in words:
        assert word in str(err.value)


def test_missing_label_file(scene_copy: Path) -> None:
    victim = first_label(scene_copy, "semantics")
    victim.unlink()
    expect_data_error(lambda: parse(scene_copy), victim, "not found")


def test_label_without_key(scene_copy: Path) -> None:
    edit_transforms(scene_copy, lambda m: m["frames"][0].pop("instance_path"))
    with pytest.raises(PliftDataError, match="instance_path"):
        parse(scene_copy)


def test_label_size_differs_from_image(scene_copy: Path) -> None:
    victim = first_label(scene_copy, "instance")
    Image.fromarray(np.zeros((10, 10), dtype=np.uint16)).save(victim)
    expect_data_error(lambda: parse(scene_copy), victim, "size")


def test_class_id_outside_class_set(scene_copy: Path) -> None:
    meta = json.loads((scene_copy / "transforms.json").read_text())
    victim = scene_copy / meta["frames"][0]["semantics_path"]
    labels = np.asarray(Image.open(victim)).copy()
    labels[0, 0] = 42
    Image.fromarray(labels).save(victim)
    expect_data_error(lambda: datamanager(scene_copy), victim, "class id 42")


def test_probability_channels_differ_from_classes(scene_copy: Path) -> None:
    meta = json.loads((scene_copy / "transforms.json").read_text())
    victim = scene_copy / meta["frames"][0]["probabilities_path"]
    h, w = meta["h"], meta["w"]
    prob = np.full((h, w, 5), 0.2, dtype=np.float16)
    np.savez_compressed(victim, probability=prob, confidence=np.ones((h, w), dtype=np.float16))
    expect_data_error(lambda: datamanager(scene_copy), victim, "5 class channels", "21 classes")


def test_inline_class_set_with_too_few_classes(scene_copy: Path) -> None:
    small = {"name": "three", "void_id": 255, "classes": [{"name": n, "isthing": False} for n in ("a", "b", "c")]}
    edit_transforms(scene_copy, lambda m: m.update(panoptic_classes=small))
    with pytest.raises(PliftDataError, match=r"outside the class set 'three'"):
        datamanager(scene_copy)


def test_unknown_class_set_name(scene_copy: Path) -> None:
    edit_transforms(scene_copy, lambda m: m.update(panoptic_classes="scannet99"))
    with pytest.raises(PliftDataError, match="scannet99"):
        parse(scene_copy)


def test_nan_pose(scene_copy: Path) -> None:
    def corrupt(meta):
        meta["frames"][0]["transform_matrix"][0][3] = float("nan")

    edit_transforms(scene_copy, corrupt)
    with pytest.raises(PliftDataError, match="NaN") as err:
        parse(scene_copy)
    assert "transforms.json" in str(err.value)


def test_non_rigid_pose(scene_copy: Path) -> None:
    def scale(meta):
        m = np.array(meta["frames"][1]["transform_matrix"])
        m[:3, :3] *= 2.0
        meta["frames"][1]["transform_matrix"] = m.tolist()

    edit_transforms(scene_copy, scale)
    with pytest.raises(PliftDataError, match="not rigid"):
        parse(scene_copy)


def test_empty_frames(scene_copy: Path) -> None:
    edit_transforms(scene_copy, lambda m: m.update(frames=[]))
    with pytest.raises(PliftDataError, match="no frames"):
        parse(scene_copy)


def test_missing_transforms(tmp_path: Path) -> None:
    with pytest.raises(PliftDataError, match="transforms.json not found"):
        parse(tmp_path)


def test_scene_without_probabilities_uses_one_hot(scene_copy: Path) -> None:
    def drop(meta):
        for f in meta["frames"]:
            f.pop("probabilities_path")

    edit_transforms(scene_copy, drop)
    dm = datamanager(scene_copy)
    _, batch = dm.next_train(0)
    assert "probability" not in batch
    assert torch.equal(batch["confidence"], (batch["semantics"] >= 0).float())


# ------------------------------------------------------------------------------------------------ reliability


def test_instance_ids_on_stuff_and_void_pixels_are_not_trained(scene_copy: Path, capsys) -> None:
    """User-made label files often carry ids on stuff segments: those pixels must not become instances."""
    meta = json.loads((scene_copy / "transforms.json").read_text())
    frame = next(f for f in meta["frames"] if f["file_path"] in meta["train_filenames"])
    sem = np.asarray(Image.open(scene_copy / frame["semantics_path"])).copy()
    inst_path = scene_copy / frame["instance_path"]
    from plift_ns.data.classes import load_class_set

    classes = load_class_set(meta["panoptic_classes"], scene_copy)
    stuff = ~np.asarray(classes.isthing)[np.clip(sem, 0, classes.num_classes - 1)] | (sem == classes.void_id)
    assert stuff.any()
    Image.fromarray(np.full(sem.shape, 77, dtype=np.uint16)).save(inst_path)  # id 77 everywhere
    dm = datamanager(scene_copy)
    c = dm.train_dataset.image_filenames.index(scene_copy / frame["file_path"])
    stored = dm.train_pixels.instance[c].numpy()
    assert np.all(stored[stuff] == 0), "stuff/void pixels must have no instance id"
    assert np.all(stored[~stuff] == 77), "thing pixels keep their id"
    assert "instance ids on stuff or void pixels were ignored in 1 of" in capsys.readouterr().out


def test_train_list_without_test_list_never_tests_on_training_frames(scene_copy: Path) -> None:
    meta = json.loads((scene_copy / "transforms.json").read_text())
    train_names = meta["train_filenames"][:9]
    edit_transforms(scene_copy, lambda m: (m.pop("test_filenames"), m.update(train_filenames=train_names)))
    train = {p.name for p in parse(scene_copy, "train").image_filenames}
    test = {p.name for p in parse(scene_copy, "test").image_filenames}
    assert len(train) == 9 and not train & test
    assert len(train | test) == len(meta["frames"]), "every frame not listed for training is a test frame"


def test_test_list_alone_trains_on_the_rest(scene_copy: Path) -> None:
    meta = json.loads((scene_copy / "transforms.json").read_text())
    test_names = meta["test_filenames"]
    edit_transforms(scene_copy, lambda m: m.pop("train_filenames"))
    train = {p.name for p in parse(scene_copy, "train").image_filenames}
    assert len(train) == len(meta["frames"]) - len(test_names)
    assert not train & {Path(n).name for n in test_names}


def test_every_frame_in_train_list_and_no_test_list(scene_copy: Path) -> None:
    edit_transforms(
        scene_copy, lambda m: (m.pop("test_filenames"), m.update(train_filenames=[f["file_path"] for f in m["frames"]]))
    )
    with pytest.raises(PliftDataError, match="'test' split has no frames: every frame is listed"):
        parse(scene_copy, "test")


@pytest.mark.parametrize("key", ["file_path", "semantics_path", "probabilities_path"])
@pytest.mark.parametrize("escape", ["../outside.png", "images/../../outside.png", "/etc/passwd"])
def test_paths_must_stay_inside_the_scene_folder(scene_copy: Path, key: str, escape: str) -> None:
    # a perfectly valid file outside the scene must not be used either
    src = scene_copy / json.loads((scene_copy / "transforms.json").read_text())["frames"][0][key]
    outside = scene_copy.parent / "outside.png"
    outside.write_bytes(src.read_bytes())
    edit_transforms(scene_copy, lambda m: m["frames"][0].update({key: escape}))
    with pytest.raises(PliftDataError, match="outside the scene folder") as err:
        parse(scene_copy)
    assert escape in str(err.value) and "transforms.json" in str(err.value)


def test_truncated_image_is_named(scene_copy: Path) -> None:
    meta = json.loads((scene_copy / "transforms.json").read_text())
    frame = next(f for f in meta["frames"] if f["file_path"] in meta["train_filenames"])
    victim = scene_copy / frame["file_path"]
    jpeg = victim.with_suffix(".jpg")
    Image.open(victim).convert("RGB").save(jpeg, quality=95)
    victim.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])  # a truncated JPEG (PIL reads by content)
    jpeg = victim
    with pytest.raises(PliftDataError, match=jpeg.name) as err:
        datamanager(scene_copy)
    assert "cannot decode image" in str(err.value)


def test_compact_distributions_match_the_files(tiny_scene: Path) -> None:
    """Training targets from the compact store equal the files' distributions up to quantisation and the top-k tail."""
    dm = datamanager(tiny_scene, rays_semantic=512, rays_instance=0, compact_labels=True)
    _, batch = dm.next_train(0)
    c, y, x = batch["indices"].unbind(-1)
    for i in range(20):
        name = dm.train_dataset.image_filenames[int(c[i])].stem
        with np.load(tiny_scene / "probabilities" / f"{name}.npz") as npz:
            prob = npz["probability"][int(y[i]), int(x[i])].astype(np.float32)
            conf = float(npz["confidence"][int(y[i]), int(x[i])])
        got = batch["probability"][i].numpy()
        top = np.argsort(prob)[::-1][:3]
        np.testing.assert_allclose(got[top], prob[top], atol=0.01)
        assert got.argmax() == prob.argmax()
        assert abs(float(batch["confidence"][i]) - conf) <= 0.5 / 255 + 1e-3
    assert torch.allclose(batch["probability"].sum(-1), torch.ones(512), atol=1e-5)


def test_loading_never_reads_ground_truth(tiny_scene: Path, monkeypatch) -> None:
    """GT files are read only when an evaluation view is requested, never while loading the training views."""
    from plift_ns.data.dataset import PanopticDataset

    calls = []
    original = PanopticDataset.read_ground_truth
    monkeypatch.setattr(PanopticDataset, "read_ground_truth", lambda self, *a: calls.append(a) or original(self, *a))
    dm = datamanager(tiny_scene)
    dm.next_train(0)
    dm.next_eval(0)
    assert calls == []
    _, batch = dm.next_eval_image(0)
    assert "gt_semantics" in batch and len(calls) == 1


def test_compact_storage_is_chosen_by_size(tiny_scene: Path) -> None:
    """Exact float16 distributions while they fit the budget, top-3 beyond it (the tiny scene: 12 frames, 64x48x21)."""
    from plift_ns.data.compact import DenseDistributions, TopKDistributions

    assert isinstance(datamanager(tiny_scene).train_pixels.probability, DenseDistributions)
    small_budget = datamanager(tiny_scene, dense_labels_max_gb=1e-4).train_pixels.probability  # 1.5 MB > 0.1 MB
    assert isinstance(small_budget, TopKDistributions)
    forced = datamanager(tiny_scene, compact_labels=False, dense_labels_max_gb=1e-4).train_pixels.probability
    assert isinstance(forced, DenseDistributions)


# ------------------------------------------------------------------------------------------------ depth


def test_depth_in_the_batch_is_the_file_in_scene_units(tiny_scene: Path) -> None:
    """With ``load_depth``, each ray's depth is its pixel's PNG value × depth_unit_scale_factor × the dataparser's
    scale (z-depth in the normalised scene); without it, the batch has no depth."""
    dm = datamanager(tiny_scene, load_depth=True)
    meta = json.loads((tiny_scene / "transforms.json").read_text())
    box = np.asarray(meta["scene_box"], dtype=np.float64)
    scale = 1.0 / float(np.max(box[1] - box.mean(axis=0)))  # the box's half-extent maps to 1
    _, batch = dm.next_train(0)
    assert batch["depth"].shape == (len(batch["indices"]), 1)
    for row in (0, 5, 70):
        c, y, x = batch["indices"][row].tolist()
        name = dm.train_dataset.image_filenames[c].name
        raw = float(np.asarray(Image.open(tiny_scene / "depth" / name))[y, x])
        expected = raw * meta["depth_unit_scale_factor"] * scale
        assert float(batch["depth"][row, 0]) == pytest.approx(expected, rel=2e-3)  # float16 storage
    assert "depth" not in datamanager(tiny_scene).next_train(0)[1]


def test_unreadable_depth_map_is_named(scene_copy: Path) -> None:
    meta = json.loads((scene_copy / "transforms.json").read_text())
    frame = next(f for f in meta["frames"] if f["file_path"] in meta["train_filenames"])
    victim = scene_copy / "depth" / "frame.npy"
    np.save(victim, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # a pickled array: never loaded
    frame["depth_file_path"] = "depth/frame.npy"
    (scene_copy / "transforms.json").write_text(json.dumps(meta))
    expect_data_error(lambda: datamanager(scene_copy, load_depth=True), victim, "cannot read the depth map")


def test_depth_unit_must_be_positive(scene_copy: Path) -> None:
    edit_transforms(scene_copy, lambda m: m.update(depth_unit_scale_factor=0))
    with pytest.raises(PliftDataError, match="depth_unit_scale_factor"):
        parse(scene_copy)
