"""Importer for the official Panoptic Lifting release's processed scene layout (Hypersim, Replica, ScanNet scenes).

Source layout (one scene folder)::

    color/<frame>.jpg                  RGB
    pose/<frame>.txt                   4x4 camera-to-world, OpenCV convention
    intrinsic/intrinsic_color.txt      4x4 (or 3x3) camera matrix of the colour images (pixel centres at integers)
    m2f_semantics/<frame>.png          machine labels: class ids 0..21 (0 = void, 1..21 = ScanNet-21 order)
    m2f_instance/<frame>.png           machine instance ids (per frame)
    m2f_probabilities/<frame>.npz      optional: ``probability`` (H, W, 22) and ``confidence`` (H, W)
    rs_semantics/, rs_instance/        optional ground truth (evaluation only)
    depth/<frame>.png                  optional uint16 depth in millimetres (used for the scene box)
    invalid/<frame>.jpg                optional masks of invalid pixels (made void in the machine labels)
    splits.json                        optional {"train": [frames], "test": [frames]} ("val" when there is no "test")
    segmentation_data.pkl              optional; read with a restricted loader only to cross-check the class count

The class ids are mapped with ``configs/class_maps/panoptic_lifting_to_scannet21.json`` (0 -> void, k -> k-th
ScanNet-21 class); another map can be given with ``--class-map``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional

import numpy as np
import tyro
from typing_extensions import Annotated

from plift_ns.data.class_maps import ClassMap, LabelLUT
from plift_ns.data.label_io import load_probability_npz, resize_labels
from plift_ns.errors import PliftDataError
from plift_ns.importers.images import output_size, read_depth_mm, read_image_size, read_mask, resize_probabilities
from plift_ns.importers.labels import read_panoptic_labels
from plift_ns.importers.layout import check_frame_counts, frame_file, list_files, source_folders
from plift_ns.importers.options import ImportOptions, class_set_spec
from plift_ns.importers.poses import PinholeIntrinsics, read_intrinsic_matrix, read_opencv_pose
from plift_ns.importers.safe_pickle import load_plain_pickle
from plift_ns.importers.writer import Frame, SceneImport

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class PanopticLiftingImport(ImportOptions):
    """Import a scene in the official Panoptic Lifting release's processed layout."""

    src: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SRC")] = tyro.MISSING  # type: ignore[assignment]
    """Scene folder of the release (holding color/, pose/, intrinsic/, m2f_semantics/, ...)."""
    dst: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DST")] = tyro.MISSING  # type: ignore[assignment]
    """Destination scene folder (data contract)."""
    class_map: str = "panoptic_lifting_to_scannet21"
    """Class map of the release's label ids (name in configs/class_maps/ or a JSON path)."""
    semantics_dir: str = "m2f_semantics"
    """Machine semantics folder; its prefix names the probabilities folder (m2f -> m2f_probabilities)."""
    instance_dir: str = "m2f_instance"
    """Machine instance folder."""
    segmentation_data: Literal["check", "skip"] = "check"
    """Read segmentation_data.pkl with the restricted loader to cross-check the class count, or ignore it."""

    def main(self) -> Path:
        return import_panoptic_lifting(self)


def _read_splits(path: Path, stems: List[str]) -> Optional[Dict[str, List[str]]]:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        train = [str(s) for s in data["train"]]
        test = [str(s) for s in data.get("test", data.get("val", []))]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise PliftDataError(f"splits must be {{'train': [...], 'test': [...]}} ({err!r})", path) from None
    known = set(stems)
    for s in train + test:
        if s not in known:
            raise PliftDataError(f"split names frame '{s}', which has no image in color/", path)
    if set(train) & set(test):
        raise PliftDataError(f"frames in both train and test: {sorted(set(train) & set(test))[:5]}", path)
    return {"train": train, "test": test}


def _check_segmentation_data(path: Path, lut: LabelLUT) -> List[str]:
    """Cross-check the pkl's plain fields with the class map; returns notes."""
    data = load_plain_pickle(path)
    if not isinstance(data, dict):
        raise PliftDataError(f"expected a dict, found {type(data).__name__}", path)
    notes: List[str] = []
    num = data.get("num_semantic_classes")
    if num is not None and int(num) != len(lut.table):
        raise PliftDataError(
            f"num_semantic_classes is {num} but the class map '{lut.map_name}' has {len(lut.table)} source ids "
            "(pass the matching --class-map)", path)
    fg = data.get("fg_classes")
    if fg is not None:
        cs = lut.class_set
        mapped = sorted({int(lut.table[int(c)]) for c in fg if 0 <= int(c) < len(lut.table)} - {cs.void_id, -1})
        not_things = [cs.names[c] for c in mapped if not cs.isthing[c]]
        if not_things:
            notes.append(f"segmentation_data.pkl lists {not_things} as things; class set '{cs.name}' treats them as stuff")
    return notes


def import_panoptic_lifting(opts: PanopticLiftingImport) -> Path:
    """Convert one official-layout scene; returns the destination folder."""
    src, color_dir, pose_dir, sem_dir, inst_dir = source_folders(opts.src, "scene", [
        ("color", "RGB images"), ("pose", "4x4 camera-to-world text files"),
        (opts.semantics_dir, "machine semantic labels"), (opts.instance_dir, "machine instance labels")])
    prob_dir = src / f"{opts.semantics_dir.split('_')[0]}_probabilities"
    gt_sem_dir, gt_inst_dir = src / "rs_semantics", src / "rs_instance"
    depth_dir, invalid_dir = src / "depth", src / "invalid"
    has_gt = gt_sem_dir.is_dir() and gt_inst_dir.is_dir()
    has_prob = prob_dir.is_dir()
    k = read_intrinsic_matrix(src / "intrinsic" / "intrinsic_color.txt")

    images = list_files(color_dir, IMAGE_SUFFIXES)
    if not images:
        raise PliftDataError("no images (.jpg/.png) in color/", color_dir)
    check_frame_counts(images, [(pose_dir, ".txt")])
    stems = list(images)[:: max(1, opts.frame_step)]
    splits = _read_splits(src / "splits.json", list(images))

    class_set, classes_json = class_set_spec(opts.classes)
    lut = ClassMap.load(opts.class_map).lut(class_set)
    notes: List[str] = []
    pkl = src / "segmentation_data.pkl"
    if pkl.exists() and opts.segmentation_data == "check":
        notes += _check_segmentation_data(pkl, lut)

    src_size = read_image_size(images[stems[0]])
    size = output_size(*src_size, opts.downscale)
    intr = PinholeIntrinsics.from_opencv(k, *src_size).resized(*size)
    with SceneImport(opts.dst, opts, intr) as scene:
        for stem, c2w in scene.frames(stems, lambda stem: read_opencv_pose(pose_dir, stem)):
            frame = Frame.from_image(stem, c2w, images[stem], src_size, size)
            invalid = None
            if invalid_dir.is_dir() and (invalid_dir / f"{stem}.jpg").is_file():
                invalid = resize_labels(read_mask(invalid_dir / f"{stem}.jpg"), size) > 0
            frame.semantics, frame.instance = read_panoptic_labels(
                frame_file(sem_dir, stem, (".png",), f"{opts.semantics_dir} label"),
                frame_file(inst_dir, stem, (".png",), f"{opts.instance_dir} label"), lut, size, void=invalid)
            if has_prob:
                prob_path = frame_file(prob_dir, stem, (".npz",), "probabilities")
                prob, conf = _read_probabilities(prob_path)
                prob, mass = lut.map_probabilities(prob, prob_path)
                prob, conf = resize_probabilities(prob, conf * np.clip(mass, 0.0, 1.0), size)
                conf[frame.semantics == class_set.void_id] = 0.0
                frame.probability, frame.confidence = prob, conf
            if has_gt:
                frame.gt_semantics, frame.gt_instance = read_panoptic_labels(
                    frame_file(gt_sem_dir, stem, (".png",), "rs_semantics (GT) label"),
                    frame_file(gt_inst_dir, stem, (".png",), "rs_instance (GT) label"), lut, size)
            if depth_dir.is_dir() and (depth_dir / f"{stem}.png").is_file():
                scene.add_depth(frame, read_depth_mm(depth_dir / f"{stem}.png"), size)
            scene.add(frame, stem)
        scene.check_kept(pose_dir)
        if splits is not None:
            names = {stem: e["file_path"] for stem, e in zip(scene.kept, scene.writer.frames)}
            split = ([names[s] for s in splits["train"] if s in names], [names[s] for s in splits["test"] if s in names])
            split_source = "splits.json"
        else:
            split, split_source = scene.interleaved_split(), "25% interleaved test (no splits.json)"
        if not split[0] or not split[1]:
            raise PliftDataError("the split leaves no train or no test frames among the imported frames", src / "splits.json")
        has_depth = all("depth_file_path" in e for e in scene.writer.frames)
        if not has_depth:
            for e in scene.writer.frames:
                e.pop("depth_file_path", None)
        if not has_gt:
            notes.append("no rs_semantics/ + rs_instance/: the scene has no ground truth (plift-eval cannot score it)")
        scene.finish("panoptic-lifting", src, lut.map_name, classes_json, split, split_source, has_depth)
    return scene.report(notes)


def _read_probabilities(path: Path):
    prob, conf = load_probability_npz(path, np.float32)
    if prob.ndim != 3 or conf.shape != prob.shape[:2]:
        raise PliftDataError(f"probability must be (H, W, C) and confidence (H, W); got {prob.shape}, {conf.shape}", path)
    return prob, conf
