"""plift-labels: query-segmenter protocol, TTA inverse transforms, soft-IoU clustering + fusion, class maps, the
transformers backend (a tiny random Mask2Former, nothing downloaded) and the scene writer / CLI."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import List, Sequence

import numpy as np
import pytest
import torch

from plift_ns.data.class_maps import fold_probabilities, load_class_map, read_class_map, resolve_class_map
from plift_ns.data.classes import load_class_set
from plift_ns.errors import PliftDataError
from plift_ns.labels.fusion import FusionConfig, cluster_segments, fuse_predictions, soft_iou
from plift_ns.labels.labeler import Labeler
from plift_ns.labels.protocol import QueryPrediction, QuerySegmenter
from plift_ns.labels.tta import build_augmentations, parse_augmentation, run_tta

os.environ["HF_HUB_OFFLINE"] = "1"

SCANNET21 = load_class_set("scannet21")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and spinning OpenMP threads are very slow on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- hand-made segmenters
class RedChannelSegmenter:
    """Known output: query 0's mask is the red channel / 255 (follows the content), query 1's mask is the left third
    of whatever image it gets (follows the position). Classes: 0 = 'chair', 1 = 'wall'."""

    def __init__(self) -> None:
        self.class_names = ["chair", "wall"]
        self.device = torch.device("cpu")
        self.calls = 0

    def predict(self, images: Sequence[torch.Tensor], mask_sizes=None) -> List[QueryPrediction]:
        self.calls += 1
        out = []
        for img in images:  # ignores mask_sizes: run_tta resizes whatever comes back
            h, w = img.shape[-2:]
            left = torch.zeros(h, w)
            left[:, : w // 3] = 1.0
            masks = torch.stack([img[0].float() / 255.0, left])
            probs = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
            out.append(QueryPrediction(probs, masks))
        return out


def smooth_image(h: int = 48, w: int = 64) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    red = 0.5 + 0.4 * torch.sin(3 * x + 1) * torch.cos(2 * y)
    return (torch.stack([red, 1 - red, 0.5 * torch.ones_like(red)]) * 255).round().to(torch.uint8)


def test_protocol_is_satisfied_by_the_hand_made_segmenter() -> None:
    assert isinstance(RedChannelSegmenter(), QuerySegmenter)
    with pytest.raises(ValueError):
        QueryPrediction(torch.zeros(3, 4), torch.zeros(2, 5, 5))


# --------------------------------------------------------------------------- TTA
def test_flip_masks_flip_back() -> None:
    image = smooth_image()
    seg = RedChannelSegmenter()
    (orig, flip) = run_tta(seg, image, [parse_augmentation("original"), parse_augmentation("hflip")])
    # content-following mask: identical after mapping back
    assert torch.allclose(flip.mask_probs[0], orig.mask_probs[0], atol=1e-6)
    # position-following mask: the left third of the flipped image is the right third of the original
    w = image.shape[-1]
    expected = torch.zeros_like(orig.mask_probs[1])
    expected[:, w - w // 3 :] = 1.0
    assert torch.equal(flip.mask_probs[1], expected)
    assert torch.equal(flip.class_probs, orig.class_probs)


@pytest.mark.parametrize("name", ["scale0.75", "scale1.25", "hflip+scale0.75", "scale1.25+hflip"])
def test_rescaled_masks_resize_back(name: str) -> None:
    image = smooth_image()
    seg = RedChannelSegmenter()
    (orig, aug) = run_tta(seg, image, [parse_augmentation("original"), parse_augmentation(name)])
    assert aug.mask_probs.shape == orig.mask_probs.shape == (2, 48, 64)
    inner = (slice(2, -2), slice(2, -2))  # borders differ by resampling only
    assert (aug.mask_probs[0][inner] - orig.mask_probs[0][inner]).abs().max() < 0.03


def test_masks_come_back_at_the_requested_working_size() -> None:
    image = smooth_image()
    augs = [parse_augmentation(n) for n in ("original", "hflip", "scale1.25")]
    preds = run_tta(RedChannelSegmenter(), image, augs, mask_size=(24, 32))
    assert all(p.mask_probs.shape == (2, 24, 32) for p in preds)
    assert (preds[2].mask_probs[0] - preds[0].mask_probs[0]).abs().max() < 0.05


def test_colour_augmentations_keep_geometry_and_change_pixels() -> None:
    image = smooth_image()
    for aug in build_augmentations(["contrast", "gamma", "brightness_contrast", "rgb_shift", "median_blur", "sharpen"])[1:]:
        out = aug.forward(image)
        assert out.shape == image.shape and out.dtype == torch.uint8
        assert not torch.equal(out, image), aug.name
        masks = torch.rand(3, 48, 64)
        assert torch.equal(aug.inverse(masks, (48, 64)), masks)
    assert [a.name for a in build_augmentations(None)] == ["original"]
    with pytest.raises(PliftDataError, match="unknown augmentation"):
        parse_augmentation("vflip")


# --------------------------------------------------------------------------- clustering and fusion
def test_soft_iou_known_values() -> None:
    masks = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.5, 1.0, 0.0, 0.0], [1.0, 0.5, 0.0, 0.0]])
    iou = soft_iou(masks)
    assert iou[0, 1].item() == pytest.approx(1 / 3)
    assert iou[2, 3].item() == pytest.approx(0.5)  # min sum 1, max sum 2
    assert iou[0, 0].item() == pytest.approx(1.0)
    assert torch.allclose(iou, iou.T)


def test_connected_components_chain() -> None:
    base = torch.zeros(4, 10)
    base[0, 0:4] = 1  # A
    base[1, 1:5] = 1  # B: IoU(A, B) = 3/5
    base[2, 2:6] = 1  # C: IoU(B, C) = 3/5, IoU(A, C) = 2/6
    base[3, 8:10] = 1  # D: alone
    labels = cluster_segments(base.view(4, 2, 5), theta=0.5)
    assert labels[0] == labels[1] == labels[2] != labels[3]
    assert len(set(cluster_segments(base.view(4, 2, 5), theta=0.7).tolist())) == 4


def _pred(probs: List[List[float]], masks: torch.Tensor) -> QueryPrediction:
    return QueryPrediction(torch.tensor(probs), masks)


def test_fusion_known_answer() -> None:
    """Two augmentations; a chair (thing, class 4) on the left, wall (stuff, class 0) on the right, a dead corner."""
    h, w, c = 4, 6, SCANNET21.num_classes
    chair, wall = SCANNET21.index("chair"), SCANNET21.index("wall")
    left = torch.zeros(h, w)
    left[:, :3] = 1.0
    right = torch.zeros(h, w)
    right[:, 3:] = 1.0
    right[0, 5] = 0.0  # nobody claims (0, 5)

    def dist(cls: int, p: float) -> List[float]:
        d = [0.0] * (c + 1)
        d[cls] = p
        d[-1] = 1.0 - p
        return d

    a = _pred([dist(chair, 0.9), dist(wall, 0.8)], torch.stack([left, right]))
    b = _pred([dist(chair, 0.7), dist(wall, 0.6)], torch.stack([left * 0.5, right]))
    fused = fuse_predictions([a, b], SCANNET21.isthing, FusionConfig(theta=0.5, void_threshold=0.1))
    assert fused.num_segments == 4 and fused.num_clusters == 2
    # chair cluster: p* = (0.9 + 0.7) / 2 = 0.8, mean mask (1 + 0.5) / 2 = 0.75 → confidence 0.6
    assert torch.all(fused.semantics[:, :3] == chair)
    assert torch.allclose(fused.confidence[:, :3], torch.full((h, 3), 0.6))
    assert torch.all(fused.instance[:, :3] == 1)
    # wall cluster: p* = 0.7, mean mask 1 → confidence 0.7; stuff → instance 0
    assert fused.semantics[1, 4] == wall and fused.instance[1, 4] == 0
    assert fused.confidence[1, 4].item() == pytest.approx(0.7)
    # the dead corner is void with confidence 0
    assert fused.semantics[0, 5] == -1 and fused.confidence[0, 5] == 0 and fused.instance[0, 5] == 0
    # class distributions: renormalised over the target classes → one-hot here; sums to 1 everywhere
    assert torch.allclose(fused.probability.sum(-1), torch.ones(h, w))
    assert fused.probability[0, 0, chair].item() == pytest.approx(1.0)
    assert 0.0 <= fused.confidence.min() and fused.confidence.max() <= 1.0


def test_fusion_two_same_class_things_get_two_instances_by_area() -> None:
    c = SCANNET21.num_classes
    chair = SCANNET21.index("chair")
    m1 = torch.zeros(1, 8, 8)
    m1[0, :, :2] = 1.0
    m2 = torch.zeros(1, 8, 8)
    m2[0, :, 3:] = 1.0
    d = [0.0] * (c + 1)
    d[chair], d[-1] = 0.95, 0.05
    fused = fuse_predictions([_pred([d], m1), _pred([d], m2)], SCANNET21.isthing)
    assert fused.instance[0, 0] == 2 and fused.instance[0, 5] == 1  # larger segment first
    assert torch.all(fused.semantics[:, 2] == -1)


def test_fusion_without_candidates_is_all_void() -> None:
    empty = QueryPrediction(torch.zeros(0, SCANNET21.num_classes + 1), torch.zeros(0, 5, 7))
    fused = fuse_predictions([empty], SCANNET21.isthing)
    assert torch.all(fused.semantics == -1) and torch.all(fused.confidence == 0)
    assert torch.allclose(fused.probability.sum(-1), torch.ones(5, 7))


def test_labeler_with_hand_made_segmenter_drops_no_object_and_folds() -> None:
    seg = RedChannelSegmenter()
    cs = load_class_set("scannet21")
    matrix = resolve_class_map("identity", seg.class_names, cs)
    labeler = Labeler(seg, cs, matrix, build_augmentations(["hflip", "gamma"]), max_side=32)
    image = smooth_image().permute(1, 2, 0).numpy().copy()
    fused = labeler.label(image)  # fused at 24 x 32, returned at 48 x 64
    assert fused.probability.shape == (48, 64, cs.num_classes)
    assert torch.allclose(fused.probability.sum(-1), torch.ones(48, 64), atol=1e-5)
    assert set(fused.semantics.unique().tolist()) <= {-1, cs.index("chair"), cs.index("wall")}
    assert seg.calls == 1  # three augmented images, one call


# --------------------------------------------------------------------------- class maps
def test_builtin_coco_maps() -> None:
    names, _, _ = read_class_map("coco_panoptic_to_scannet21")
    assert len(names) == 133 and names[0] == "person" and names[79] == "toothbrush" and names[132] == "rug-merged"
    for target in ("scannet21", "scannet31"):
        cs = load_class_set(target)
        m = load_class_map(f"coco_panoptic_to_{target}", names, cs)
        assert m.shape == (133, cs.num_classes) and np.all(m.sum(1) == 1)
        assert m[names.index("couch"), cs.index("sofa")] == 1
        assert m[names.index("wall-brick"), cs.index("wall")] == m[names.index("wall-other-merged"), cs.index("wall")] == 1
        assert m[names.index("handbag"), cs.index("bag")] == 1
        assert np.all(m.sum(0) >= 1)  # every target class is reachable
    m31 = load_class_map("coco_panoptic_to_scannet31", names, load_class_set("scannet31"))
    assert m31[names.index("laptop"), load_class_set("scannet31").index("laptop")] == 1
    # different order in the model: matched by name
    shuffled = list(reversed(names))
    m_rev = load_class_map("coco_panoptic_to_scannet21", shuffled, SCANNET21)
    assert np.array_equal(m_rev, load_class_map("coco_panoptic_to_scannet21", names, SCANNET21)[::-1])


def test_folding_sums_merged_classes_and_keeps_sum_one(tmp_path: Path) -> None:
    src = ["wall-a", "wall-b", "chair", "sky"]
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"map": [["wall-a", "wall"], ["wall-b", "wall"], ["chair", "chair"], ["sky", None]]}))
    m = load_class_map(path, src, SCANNET21)
    probs = torch.tensor([[0.2, 0.3, 0.1, 0.15, 0.25]])  # + no object
    folded = fold_probabilities(probs, m)
    assert folded.shape == (1, SCANNET21.num_classes + 1)
    assert folded[0, SCANNET21.index("wall")].item() == pytest.approx(0.5)
    assert folded[0, SCANNET21.index("chair")].item() == pytest.approx(0.1)
    assert folded[0, -1].item() == pytest.approx(0.4)  # sky (unmapped) + no object
    assert folded.sum().item() == pytest.approx(1.0)


def test_class_map_count_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PliftDataError, match=r"133 source classes .* 10 classes") as info:
        load_class_map("coco_panoptic_to_scannet21", [f"c{i}" for i in range(10)], SCANNET21)
    assert "coco_panoptic_to_scannet21.json" in str(info.value)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"map": [["a", "not-a-class"]]}))
    with pytest.raises(PliftDataError, match="not classes of the class set"):
        load_class_map(bad, ["a"], SCANNET21)
    with pytest.raises(PliftDataError, match="class map not found"):
        load_class_map(tmp_path / "missing.json", ["a"], SCANNET21)


# --------------------------------------------------------------------------- transformers backend
@pytest.fixture(scope="module")
def tiny_segmenter(tiny_m2f: Path):
    from plift_ns.labels.hf_backend import HFQuerySegmenter

    return HFQuerySegmenter(str(tiny_m2f), device="cpu", batch_size=2)


def test_hf_backend_protocol_shapes(tiny_segmenter) -> None:
    seg = tiny_segmenter
    assert isinstance(seg, QuerySegmenter) and len(seg.class_names) == 133
    images = [smooth_image(48, 64), smooth_image(60, 50), smooth_image(48, 64)]
    preds = seg.predict(images)
    for img, pred in zip(images, preds):
        assert pred.class_probs.shape == (8, 134) and pred.mask_probs.shape == (8, *img.shape[-2:])
        assert torch.allclose(pred.class_probs.sum(-1), torch.ones(8), atol=1e-5)
        assert pred.mask_probs.min() >= 0 and pred.mask_probs.max() <= 1
    assert torch.allclose(preds[0].mask_probs, preds[2].mask_probs, atol=1e-5)  # batching does not change results
    small = seg.predict([images[0]], mask_sizes=[(24, 32)])[0]
    assert small.mask_probs.shape == (8, 24, 32)
    pooled = torch.nn.functional.avg_pool2d(preds[0].mask_probs[None], 2)[0]
    assert (small.mask_probs - pooled).abs().mean() < 0.02


def test_hf_backend_masks_match_plain_upsampling_without_padding(tiny_segmenter) -> None:
    """A 96x128 image is fed unresized (shortest edge 96, multiple of 32): masks = bilinear upsampling of the logits."""
    seg = tiny_segmenter
    img = smooth_image(96, 128)
    pred = seg.predict([img])[0]
    inputs = seg.processor(images=[img], return_tensors="pt")
    assert tuple(inputs["pixel_values"].shape[-2:]) == (96, 128)
    with torch.no_grad():
        logits = seg.model(pixel_values=inputs["pixel_values"]).masks_queries_logits
    ref = torch.nn.functional.interpolate(logits, size=(96, 128), mode="bilinear", align_corners=False)[0].sigmoid()
    assert torch.allclose(pred.mask_probs, ref, atol=1e-4)


def test_hf_backend_eomt_removes_square_padding(tmp_path: Path) -> None:
    """EoMT pads to a square without a pixel mask: masks come from the valid (resized) region only."""
    from transformers import EomtConfig, EomtForUniversalSegmentation, EomtImageProcessor

    from plift_ns.labels.hf_backend import HFQuerySegmenter

    names = {i: f"c{i}" for i in range(5)}
    config = EomtConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=16,
                        num_blocks=1, num_queries=6, num_labels=5, id2label=names, label2id={v: k for k, v in names.items()})
    EomtForUniversalSegmentation(config).save_pretrained(tmp_path)
    EomtImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}, do_pad=True).save_pretrained(tmp_path)
    seg = HFQuerySegmenter(str(tmp_path), device="cpu")
    img = smooth_image(48, 64)
    pred = seg.predict([img])[0]
    assert pred.class_probs.shape == (6, 6) and pred.mask_probs.shape == (6, 48, 64)
    inputs = seg._inputs([img])
    with torch.no_grad():
        logits = seg.model(**inputs).masks_queries_logits
    ref = torch.nn.functional.interpolate(logits, size=(64, 64), mode="bilinear")[0][:, :48].sigmoid()
    assert torch.allclose(pred.mask_probs, ref, atol=1e-5)


def test_unknown_hub_id_offline_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from plift_ns.labels import hf_backend

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(PliftDataError, match="not found locally.*HF_HUB_OFFLINE"):
        hf_backend.HFQuerySegmenter("nobody/no-such-segmenter-model")
    assert time.perf_counter() - start < 10
    # hub allowed but unreachable: no retries for minutes, one clear message
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf_backend, "hub_reachable", lambda timeout=5.0: False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(PliftDataError, match="cannot be reached"):
        hf_backend.HFQuerySegmenter("nobody/no-such-segmenter-model")
    with pytest.raises(PliftDataError, match="model folder not found"):
        hf_backend.HFQuerySegmenter(str(tmp_path / "no" / "such" / "folder"))
    with pytest.raises(PliftDataError, match="no config.json"):
        hf_backend.HFQuerySegmenter(str(tmp_path))


def test_detectron2_absent_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("plift_ns.labels.detectron2_backend")
    try:
        import detectron2  # noqa: F401

        pytest.skip("detectron2 is installed")
    except ImportError:
        pass
    from plift_ns.labels.detectron2_backend import load_detectron2_segmenter

    with pytest.raises(PliftDataError, match="detectron2 is not installed; use the transformers backend"):
        load_detectron2_segmenter(tmp_path / "cfg.yaml", tmp_path / "w.pkl")


# --------------------------------------------------------------------------- scene writer / CLI
def _args(scene: Path, model: Path, **kw):
    from plift_ns.labels.cli import LabelsArgs

    return LabelsArgs(data=scene, model=str(model), device="cpu", **kw)


def test_plift_labels_end_to_end_and_resume(scene_copy: Path, tiny_m2f: Path, tmp_path: Path) -> None:
    from plift_ns.data.dataparser import PanopticDataParserConfig
    from plift_ns.labels.cli import main, run
    from plift_ns.labels.coco_export import decode_ids

    original = json.loads((scene_copy / "transforms.json").read_text())
    # the synthetic scene has its own label files: not replaced without --overwrite, before any model is loaded
    with pytest.raises(PliftDataError, match="not written by plift-labels"):
        run(_args(scene_copy, tiny_m2f, tta=("hflip", "scale0.75")))
    coco = tmp_path / "coco"
    argv = ["--data", str(scene_copy), "--model", str(tiny_m2f), "--device", "cpu", "--tta", "hflip", "scale0.75",
            "--overwrite", "--export-coco", str(coco)]
    assert main(argv) == 0

    meta = json.loads((scene_copy / "transforms.json").read_text())
    assert json.loads((scene_copy / "transforms.json.bak").read_text()) == original
    assert meta["panoptic_classes"] == "scannet21"
    for before, frame in zip(original["frames"], meta["frames"]):
        stem = Path(frame["file_path"]).stem
        assert frame["semantics_path"] == f"semantics/{stem}.png"
        assert frame["instance_path"] == f"instance/{stem}.png"
        assert frame["probabilities_path"] == f"probabilities/{stem}.npz"
        assert frame["gt_semantics_path"] == before["gt_semantics_path"]
    with np.load(scene_copy / meta["frames"][0]["probabilities_path"], allow_pickle=False) as npz:
        prob, conf = npz["probability"], npz["confidence"]
    assert prob.dtype == np.float16 and prob.shape == (48, 64, 21)
    assert np.allclose(prob.astype(np.float32).sum(-1), 1.0, atol=1e-2)
    assert conf.min() >= 0 and conf.max() <= 1
    assert not list(scene_copy.rglob("*.tmp"))
    # the data contract holds: the dataparser accepts the scene
    outputs = PanopticDataParserConfig(data=scene_copy).setup().get_dataparser_outputs("train")
    assert len(outputs.image_filenames) == 12
    # COCO panoptic export
    exported = json.loads((coco / "panoptic.json").read_text())
    assert len(exported["annotations"]) == 16 and len(exported["categories"]) == 21
    from PIL import Image

    ann = exported["annotations"][0]
    ids = decode_ids(np.asarray(Image.open(coco / "panoptic" / ann["file_name"])))
    assert set(np.unique(ids).tolist()) - {0} == {s["id"] for s in ann["segments_info"]}

    # resume: a second run skips everything; deleting one file recreates only that frame
    report = run(_args(scene_copy, tiny_m2f, tta=("hflip", "scale0.75")))
    assert report.written == [] and len(report.skipped) == 16
    victim = scene_copy / meta["frames"][3]["instance_path"]
    victim.unlink()
    other = scene_copy / meta["frames"][4]["semantics_path"]
    mtime = other.stat().st_mtime_ns
    report = run(_args(scene_copy, tiny_m2f, tta=("hflip", "scale0.75")))
    assert report.written == [Path(meta["frames"][3]["file_path"]).stem] and victim.exists()
    assert other.stat().st_mtime_ns == mtime
    # other settings: refuse to mix labels
    with pytest.raises(PliftDataError, match="other settings"):
        run(_args(scene_copy, tiny_m2f, no_tta=True))


def test_plift_labels_on_an_unlabelled_ns_process_data_scene(scene_copy: Path, tiny_m2f: Path) -> None:
    """A scene as ns-process-data writes it: JPEG frames, no label keys, no panoptic_classes."""
    import shutil

    from PIL import Image

    from plift_ns.data.dataparser import PanopticDataParserConfig
    from plift_ns.labels.cli import run

    meta = json.loads((scene_copy / "transforms.json").read_text())
    for name in ("semantics", "instance", "probabilities", "gt_semantics", "gt_instance", "depth"):
        shutil.rmtree(scene_copy / name)
    for frame in meta["frames"]:
        png = scene_copy / frame["file_path"]
        frame["file_path"] = str(Path(frame["file_path"]).with_suffix(".jpg"))
        Image.open(png).convert("RGB").save(scene_copy / frame["file_path"], quality=95)
        png.unlink()
        for key in [k for k in frame if k.endswith("_path") and k != "file_path"]:
            del frame[key]
    for key in ("panoptic_classes", "train_filenames", "test_filenames", "gt_instances", "synthetic"):
        meta.pop(key, None)
    meta["applied_transform"] = np.eye(4)[:3].tolist()
    (scene_copy / "transforms.json").write_text(json.dumps(meta))
    report = run(_args(scene_copy, tiny_m2f, classes="scannet31", no_tta=True))
    assert len(report.written) == 16
    meta = json.loads((scene_copy / "transforms.json").read_text())
    assert meta["panoptic_classes"] == "scannet31" and meta["frames"][0]["semantics_path"].startswith("semantics/")
    outputs = PanopticDataParserConfig(data=scene_copy).setup().get_dataparser_outputs("train")
    assert outputs.metadata["class_set"].num_classes == 31


def test_plift_labels_bad_inputs(scene_copy: Path, tiny_m2f: Path, tmp_path: Path) -> None:
    from plift_ns.labels.cli import run

    bad_map = tmp_path / "ten.json"
    bad_map.write_text(json.dumps({"map": [[f"c{i}", "wall"] for i in range(10)]}))
    start = time.perf_counter()
    with pytest.raises(PliftDataError, match=r"10 source classes .* 133 classes"):
        run(_args(scene_copy, tiny_m2f, class_map=str(bad_map), no_tta=True, overwrite=True))
    with pytest.raises(PliftDataError, match="not found locally"):
        run(_args(scene_copy, Path("nobody/no-such-model"), no_tta=True, overwrite=True))
    with pytest.raises(PliftDataError, match="unknown class set|class set file not found"):
        run(_args(scene_copy, tiny_m2f, classes="scannet99", no_tta=True, overwrite=True))
    with pytest.raises(PliftDataError, match="transforms.json not found"):
        run(_args(tmp_path, tiny_m2f, no_tta=True))
    assert time.perf_counter() - start < 30
