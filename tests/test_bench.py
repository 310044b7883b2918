"""Benchmark pieces: Mask2Former targets and from-scratch training, label sources, time-to-quality, report tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from plift_ns.bench.cli import Quality, _mean, quality_markdown
from plift_ns.bench.quality import VARIANTS, relabel_scene, time_to_quality
from plift_ns.bench.segmenter import SegmenterTrainConfig, augment, jitter_colours, panoptic_targets, train_segmenter
from plift_ns.data.classes import load_class_set
from plift_ns.data.label_io import read_label_png

CLASSES = load_class_set("scannet21")


def test_panoptic_targets_one_mask_per_stuff_class_and_thing_instance() -> None:
    wall, floor, chair = CLASSES.index("wall"), CLASSES.index("floor"), CLASSES.index("chair")
    assert not CLASSES.isthing[wall] and CLASSES.isthing[chair]
    sem = torch.full((6, 8), wall)
    sem[4:] = floor
    sem[0:2, 0:2] = chair
    sem[2:4, 5:8] = chair
    sem[0, 7] = -1  # void
    sem[5, 0] = chair  # a thing pixel without an instance id
    inst = torch.zeros_like(sem)
    inst[0:2, 0:2] = 7
    inst[2:4, 5:8] = 3
    inst[1, 4] = 9  # an instance id on a stuff pixel is ignored
    masks, classes = panoptic_targets(sem, inst, CLASSES)
    # Independent expectation, pixel by pixel.
    expected = {}
    for (y, x), c in np.ndenumerate(sem.numpy()):
        if c < 0 or (CLASSES.isthing[c] and inst[y, x] <= 0):
            continue
        key = (int(c), int(inst[y, x]) if CLASSES.isthing[c] else 0)
        expected.setdefault(key, set()).add((y, x))
    got = {}
    for mask, c in zip(masks, classes.tolist()):
        pixels = {tuple(p) for p in torch.nonzero(mask > 0).tolist()}
        h = {int(inst[p]) for p in pixels} if CLASSES.isthing[c] else {0}
        assert len(h) == 1
        got[(c, h.pop())] = pixels
    assert got == expected
    assert masks.sum(0).max() == 1  # disjoint


def test_time_to_quality_first_point_reaching_95_percent() -> None:
    curve = [
        {"step": 100, "seconds": 10.0, "PQ_scene": 0.2},
        {"step": 200, "seconds": 20.0, "PQ_scene": 0.38},
        {"step": 300, "seconds": 30.0, "PQ_scene": 0.5},
        {"step": 400, "seconds": 40.0, "PQ_scene": 0.4},
    ]
    assert time_to_quality(curve) == 20.0  # 0.38 >= 0.95 * 0.4
    assert time_to_quality(curve, fraction=1.0) == 30.0
    assert time_to_quality([]) is None


def test_quality_markdown_deltas_against_full() -> None:
    summary = {
        "2D labels": {"mIoU": 0.5, "PQ_scene": 0.3, "PSNR": None},
        "full": {"mIoU": 0.6, "PQ_scene": 0.4, "PSNR": 27.0, "train_s": 12.0},
        "all off": {"mIoU": 0.55, "PQ_scene": 0.45, "PSNR": 26.5},
    }
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in quality_markdown(summary).splitlines()[2:]}
    assert rows["full"][0] == "60.0" and rows["2D labels"][0] == "50.0"
    assert rows["2D labels"][6] == "-10.0"  # Δ mIoU vs full
    assert rows["all off"][7] == "+5.0"  # Δ PQ^scene vs full
    assert rows["full"][5] == "27.00" and rows["2D labels"][5] == "–"


def test_quality_summary_is_the_mean_and_half_range_over_scenes() -> None:
    scenes = [{"mIoU": 0.8, "PQ_scene": 0.7, "PSNR": 28.0}, {"mIoU": 0.6, "PQ_scene": 0.7, "PSNR": 27.0}]
    row = _mean(scenes)
    assert row["mIoU"] == pytest.approx(0.7) and row["mIoU_spread"] == pytest.approx(0.1)
    assert row["PQ_scene_spread"] == 0.0 and row["SQ_scene"] is None and row["SQ_scene_spread"] is None
    cells = quality_markdown({"full": row}).splitlines()[2].split("|")[2:-1]
    assert [c.strip() for c in cells[:2]] == ["70.0 ± 10.0", "70.0 ± 0.0"] and cells[5].strip() == "27.50 ± 0.50"
    assert _mean(scenes[:1])["mIoU_spread"] is None  # one scene: no spread


def test_segmenter_augmentation_keeps_masks_on_their_pixels() -> None:
    """Flip and zoom move the image and its masks alike; a mask that leaves the frame goes with its label."""
    codes = {3: 1.0, 5: 0.6, 7: 0.3}
    masks = torch.zeros(3, 24, 32)
    masks[0, :, :12] = 1  # a wall on the left (label 3)
    masks[1, 14:, 14:23] = 1  # a block lower right (label 5)
    masks[2, :10, 24:] = 1  # a corner object (label 7)
    labels = torch.tensor([3, 5, 7])
    image = (masks * torch.tensor([1.0, 0.6, 0.3])[:, None, None]).sum(dim=0).expand(3, -1, -1)
    flipped = dropped = zoomed_out = 0
    for seed in range(60):
        out_image, out_masks, out_labels = augment(image, masks, labels, torch.Generator().manual_seed(seed), True, 1.0)
        assert out_image.shape == image.shape and out_masks.shape[1:] == masks.shape[1:]
        assert len(out_masks) == len(out_labels) and set(out_masks.unique().tolist()) <= {0.0, 1.0}
        for mask, label in zip(out_masks, out_labels.tolist()):
            inside = out_image[0][mask > 0]
            if len(inside) >= 16:  # not a sliver at the crop's edge, where bilinear and nearest resampling differ
                assert ((inside - codes[label]).abs() < 0.05).float().mean() > 0.5, (seed, label)
        wall = out_masks[out_labels.tolist().index(3)]
        flipped += int(wall[:, -1].any() and not wall[:, 0].any())
        dropped += int(7 not in out_labels.tolist())
        zoomed_out += int(not out_image[0, 0].any() and not out_image[0, -1].any() and out_image[0].any())
    assert flipped and dropped and zoomed_out  # every branch was taken
    same = augment(image, masks, labels, torch.Generator().manual_seed(0), False, 0.0)
    assert torch.equal(same[0], image) and torch.equal(same[1], masks) and torch.equal(same[2], labels)


def test_segmenter_colour_jitter_spans_the_photometric_tta_variants() -> None:
    """Colour jitter keeps images in [0, 1], is off at strength 0, and its brightness and contrast reach past the
    TTA's photometric variants (brightness 1.2, contrast 1.3) both ways; the per-channel gains tint a grey by at most 10% each."""
    image = torch.linspace(0.1, 0.9, 3 * 20 * 30).reshape(3, 20, 30)
    grey = torch.full((3, 20, 30), 0.5)
    assert torch.equal(jitter_colours(image, torch.Generator().manual_seed(0), 0.0), image)
    means, spreads = [], []
    for seed in range(200):
        out = jitter_colours(image, torch.Generator().manual_seed(seed), 0.3)
        assert out.shape == image.shape and float(out.min()) >= 0 and float(out.max()) <= 1
        means.append(float(out.mean()) / float(image.mean()))
        spreads.append(float(out.std()) / float(image.std()))
        tinted = jitter_colours(grey, torch.Generator().manual_seed(seed), 0.3)[:, 0, 0]
        assert float(tinted.max() / tinted.min()) <= 1.1 ** 2 + 1e-4  # gains within [1 / 1.1, 1.1]
    assert min(means) < 1 / 1.2 and max(means) > 1.2
    assert min(spreads) < 1 / 1.3 and max(spreads) > 1.3


@pytest.fixture(scope="module")
def trained_segmenter(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Mask2Former trained from scratch for a few steps on the tiny scene's GT (enough to exercise every path)."""
    out = tmp_path_factory.mktemp("segmenter") / "m2f"
    losses = []
    config = SegmenterTrainConfig(width=16, depth=1, decoder_layers=1, num_queries=12, steps=6, batch_size=2, lr=1e-3)
    train_segmenter([tiny_scene], out, config, progress=lambda step, loss: losses.append(loss))
    assert len(losses) == 6 and all(np.isfinite(losses))
    return out


def test_trained_segmenter_is_a_plift_labels_checkpoint(trained_segmenter: Path, tiny_scene: Path, tmp_path: Path) -> None:
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in trained_segmenter.iterdir()}
    assert json.loads((trained_segmenter / "config.json").read_text())["id2label"]["0"] == "wall"
    scene = relabel_scene(tiny_scene, tmp_path / "relabelled", trained_segmenter, tta=False)
    meta = json.loads((scene / "transforms.json").read_text())
    changed = 0
    for frame in meta["frames"]:
        ours = read_label_png(scene / frame["semantics_path"])
        simulated = read_label_png(tiny_scene / frame["semantics_path"])
        assert ours.shape == simulated.shape
        changed += int((ours != simulated).any())
        with np.load(scene / frame["probabilities_path"], allow_pickle=False) as z:
            assert z["probability"].shape[-1] == CLASSES.num_classes
    assert changed > 0  # labels now come from the segmenter, not the simulator
    assert (scene / "gt_semantics").is_dir()  # GT untouched


def test_segmenter_training_needs_gt(scene_copy: Path, tmp_path: Path) -> None:
    from plift_ns.errors import PliftDataError

    meta = json.loads((scene_copy / "transforms.json").read_text())
    del meta["frames"][0]["gt_semantics_path"]
    (scene_copy / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(PliftDataError, match="no GT labels"):
        train_segmenter([scene_copy], tmp_path / "m2f", SegmenterTrainConfig(steps=1))
    assert not (tmp_path / "m2f").exists()


def test_quality_benchmark_end_to_end_two_label_sources(trained_segmenter: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    report = Quality(
        preset="ci", variants=("full", "all off"), labels=("simulated", "mask2former-no-tta"), segmenter=trained_segmenter,
        steps=6, num_scenes=1, device="cpu", output_dir=out,
    ).main()
    assert set(report["summary"]) == {"simulated", "mask2former-no-tta"}
    for source in report["summary"].values():
        assert set(source) == {"2D labels", "oracle vote", "full", "all off"}
        assert 0.0 <= source["full"]["mIoU"] <= 1.0 and 0.0 <= source["oracle vote"]["mIoU"] <= 1.0
    # The two sources give the lifted model different 2D labels to start from.
    assert report["summary"]["simulated"]["2D labels"] != report["summary"]["mask2former-no-tta"]["2D labels"]
    markdown = (out / "quality.md").read_text()
    assert "## 2D labels: simulated" in markdown and "## 2D labels: mask2former-no-tta" in markdown
    assert "| oracle vote |" in markdown
    assert (out / "quality.png").stat().st_size > 1000
    saved = json.loads((out / "quality.json").read_text())
    assert saved["steps"] == 6 and saved["complete"] is True
    assert "INCOMPLETE" not in markdown


def test_targets_reached_first_evaluation_past_each_target() -> None:
    from plift_ns.bench.time_to_quality import targets_reached, ttq_markdown

    curve = [
        {"step": 10, "seconds": 5.0, "PSNR": 20.0, "PQ_scene": 0.40, "mIoU": 0.60},
        {"step": 20, "seconds": 9.0, "PSNR": 25.5, "PQ_scene": 0.50, "mIoU": 0.70},
        {"step": 30, "seconds": 14.0, "PSNR": 26.0, "PQ_scene": 0.52, "mIoU": 0.69},
    ]
    labels = {"PQ_scene": 0.36, "mIoU": 0.607, "PQ": 0.6}
    plift = {"method": "plift", "curve": curve, "labels_2d": labels, "frame_512_s": 1.0, "peak_mem_mb": 100}
    # PQ^scene target 0.36 + 0.153 = 0.513 -> 14 s; mIoU target 0.607 + 0.089 = 0.696 -> 9 s; PSNR 25 -> 9 s
    assert targets_reached(plift) == {"PSNR": 9.0, "PQ_scene": 14.0, "mIoU": 9.0}
    tensorf = {"method": "tensorf", "frame_512_s": 2.0, "peak_mem_mb": 50, "labels_2d": {},
               "curve": [{"step": 10, "seconds": 27.0, "PSNR": 25.1}]}
    assert targets_reached(tensorf) == {"PSNR": 27.0, "PQ_scene": None, "mIoU": None}
    table = ttq_markdown([plift, tensorf])
    assert "| plift | 9 | 3.00× shorter | 14 | 9 |" in table
    assert "| tensorf | 27 | 1.00× shorter | not reached | not reached |" in table
    # a reference that never reaches PSNR 25 within its run gives a lower bound: its whole run over our time
    slow = {**tensorf, "curve": [{"step": 10, "seconds": 40.0, "PSNR": 21.0}, {"step": 20, "seconds": 81.0, "PSNR": 22.0}]}
    table = ttq_markdown([plift, slow])
    assert "| plift | 9 | > 9.00× shorter (tensorf below 25 after 81 s) | 14 | 9 |" in table
    assert "| tensorf | not reached | – |" in table


@pytest.mark.parametrize("method", ["panoptic-lifting-small", "tensorf"])
def test_time_to_quality_run_in_a_child_process(method: str, tiny_scene: Path) -> None:
    from plift_ns.bench.time_to_quality import run_method

    result = run_method(method, tiny_scene, steps=4, eval_every=2, device="cpu")
    assert "error" not in result, result.get("error")
    assert [p["step"] for p in result["curve"]] == [2, 4]
    assert result["curve"][1]["seconds"] > result["curve"][0]["seconds"] > 0
    assert all(np.isfinite(p["PSNR"]) for p in result["curve"])
    assert result["frame_512_s"] > 0 and result["peak_mem_mb"] > 0
    if method == "tensorf":
        assert "PQ_scene" not in result["curve"][0]
    else:
        assert 0 <= result["curve"][1]["PQ_scene"] <= 1 and set(result["labels_2d"]) == {"PQ_scene", "mIoU", "PQ"}


def test_time_to_quality_stops_at_its_wall_clock_cap(tiny_scene: Path) -> None:
    """``max_seconds`` (``--quality-seconds``) ends a run, scored once more, at the first step past the cap."""
    from plift_ns.bench.time_to_quality import run_method

    result = run_method("panoptic-lifting-small", tiny_scene, steps=50, eval_every=20, device="cpu", max_seconds=1e-6)
    assert "error" not in result, result.get("error")
    assert [p["step"] for p in result["curve"]] == [1]


def test_table2_rows_each_switch_off_one_component_of_full() -> None:
    full = VARIANTS["full"]
    assert all(full.values())
    for name, switches in VARIANTS.items():
        off = {key for key, value in switches.items() if not value}
        assert set(switches) == set(full), name
        if name == "all off":
            assert off == set(full)
        elif name != "full":
            assert 1 <= len(off) <= 2 and (len(off) == 1 or off == {"bounded_semantics", "bounded_instances"}), name
