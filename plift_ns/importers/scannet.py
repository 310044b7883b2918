"""Importer for ScanNet exports (the output of ScanNet's SensReader plus the 2D label zips).

Source layout (one scan folder)::

    color/<i>.jpg                    RGB (1296x968 in ScanNet v2)
    depth/<i>.png                    optional uint16 depth in mm (640x480, ``intrinsic/intrinsic_depth.txt``); scene box
    pose/<i>.txt                     4x4 camera-to-world, OpenCV convention; frames with NaN/inf poses are skipped
    intrinsic/intrinsic_color.txt    4x4 camera matrix of the colour images
    label-filt/<i>.png               2D semantic labels: NYU40 ids (0 = unannotated), or raw ScanNet label ids with
                                     ``--label-ids scannet --label-map-tsv scannetv2-labels.combined.tsv``
    instance-filt/<i>.png            2D instance ids (consistent across the scan; 0 = none)

Labels are ground truth: they are written to ``gt_*`` only; input labels come from ``--labels-from``. Images are
resampled to the label images' size (``--image-size labels``, default) or labels to the colour size, then
``--downscale``d; NYU40 ids map to the class set with ``configs/class_maps/nyu40_to_scannet21.json``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Literal, Optional

import numpy as np
import tyro
from typing_extensions import Annotated

from plift_ns.data.class_maps import ClassMap
from plift_ns.errors import PliftDataError
from plift_ns.importers.images import output_size, read_depth_mm, read_image_size, read_png
from plift_ns.importers.labels import input_labels, labels_note, read_panoptic_labels
from plift_ns.importers.layout import check_frame_counts, frame_file, list_files, source_folders
from plift_ns.importers.options import GroundTruthImportOptions, class_set_spec
from plift_ns.importers.poses import PinholeIntrinsics, read_intrinsic_matrix, read_opencv_pose
from plift_ns.importers.writer import Frame, SceneImport

NUM_NYU40 = 40


@dataclass
class ScanNetImport(GroundTruthImportOptions):
    """Import a ScanNet export (color/, pose/, intrinsic/, label-filt/, instance-filt/, optional depth/)."""

    src: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SRC")] = tyro.MISSING  # type: ignore[assignment]
    """Scan folder (e.g. scans/scene0050_02 after exporting the .sens file and unzipping the 2D labels)."""
    dst: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DST")] = tyro.MISSING  # type: ignore[assignment]
    """Destination scene folder (data contract)."""
    label_ids: Literal["nyu40", "scannet"] = "nyu40"
    """What label-filt holds: NYU40 ids, or raw ScanNet label ids (then --label-map-tsv is needed)."""
    label_map_tsv: Optional[Path] = None
    """scannetv2-labels.combined.tsv (columns 'id' and 'nyu40id'), for --label-ids scannet."""
    class_map: str = "nyu40_to_scannet21"
    """NYU40 id -> class set map (name in configs/class_maps/ or a JSON path)."""
    image_size: Literal["labels", "color"] = "labels"
    """Common resolution before --downscale: the label images' (640x480) or the colour images' (1296x968)."""

    def main(self) -> Path:
        return import_scannet(self)


def read_scannet_to_nyu40(path: Path) -> np.ndarray:
    """Raw ScanNet label id -> NYU40 id from scannetv2-labels.combined.tsv (0 stays 0; no nyu40id -> 40)."""
    if not path.is_file():
        raise PliftDataError("label map tsv not found", path)
    table: Dict[int, int] = {0: 0}
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None or "id" not in reader.fieldnames or "nyu40id" not in reader.fieldnames:
            raise PliftDataError("expected a tab-separated file with columns 'id' and 'nyu40id'", path)
        for row in reader:
            try:
                raw = int(row["id"])
                table[raw] = int(row["nyu40id"]) if row["nyu40id"].strip() else NUM_NYU40
            except ValueError as err:
                raise PliftDataError(f"bad row {row} ({err})", path) from None
    lut = np.full(max(table) + 1, -1, dtype=np.int64)
    for raw, nyu in table.items():
        lut[raw] = nyu
    return lut


def _nyu40(labels: np.ndarray, path: Path, raw_lut: Optional[np.ndarray]) -> np.ndarray:
    if raw_lut is None:
        if labels.max(initial=0) > NUM_NYU40:
            raise PliftDataError(
                f"label id {int(labels.max())} is not an NYU40 id (unknown label; raw ScanNet label ids need "
                "--label-ids scannet --label-map-tsv scannetv2-labels.combined.tsv)", path)
        return labels
    bad = labels >= len(raw_lut)
    mapped = np.where(bad, -1, raw_lut[np.minimum(labels, len(raw_lut) - 1)])
    if (mapped < 0).any():
        raise PliftDataError(f"label id {int(labels[mapped < 0][0])} is not in the label map tsv (unknown label)", path)
    return mapped


def import_scannet(opts: ScanNetImport) -> Path:
    """Convert one ScanNet scan export; returns the destination folder."""
    src, color_dir, pose_dir, label_dir, inst_dir = source_folders(opts.src, "scan", [
        ("color", "<i>.jpg"), ("pose", "4x4 camera-to-world text files"),
        ("label-filt", "unzip <scan>_2d-label-filt.zip"), ("instance-filt", "unzip <scan>_2d-instance-filt.zip")])
    depth_dir = src / "depth"
    k_color = read_intrinsic_matrix(src / "intrinsic" / "intrinsic_color.txt")
    raw_lut = None
    if opts.label_ids == "scannet":
        if opts.label_map_tsv is None:
            raise PliftDataError("--label-ids scannet needs --label-map-tsv scannetv2-labels.combined.tsv")
        raw_lut = read_scannet_to_nyu40(Path(opts.label_map_tsv))

    images = list_files(color_dir, (".jpg", ".jpeg", ".png"))
    if not images:
        raise PliftDataError("no images in color/", color_dir)
    check_frame_counts(images, [(pose_dir, ".txt"), (label_dir, ".png"), (inst_dir, ".png")])

    class_set, classes_json = class_set_spec(opts.classes)
    lut = ClassMap.load(opts.class_map).lut(class_set)
    stems = list(images)[:: max(1, opts.frame_step)]
    color_size = read_image_size(images[stems[0]])
    label_shape = read_png(frame_file(label_dir, stems[0], (".png",), "label-filt label")).shape
    base_size = (label_shape[1], label_shape[0]) if opts.image_size == "labels" else color_size
    size = output_size(*base_size, opts.downscale)
    intr = PinholeIntrinsics.from_opencv(k_color, *color_size).resized(*size)
    k_depth_path = src / "intrinsic" / "intrinsic_depth.txt"
    k_depth = read_intrinsic_matrix(k_depth_path) if depth_dir.is_dir() and k_depth_path.is_file() else None
    rng = np.random.default_rng(opts.seed)
    with SceneImport(opts.dst, opts, intr) as scene:
        for stem, c2w in scene.frames(stems, lambda stem: read_opencv_pose(pose_dir, stem)):
            frame = Frame.from_image(stem, c2w, images[stem], color_size, size)
            frame.gt_semantics, frame.gt_instance = read_panoptic_labels(
                frame_file(label_dir, stem, (".png",), "label-filt label"),
                frame_file(inst_dir, stem, (".png",), "instance-filt label"), lut, size,
                ids=lambda labels, path: _nyu40(labels, path, raw_lut))
            input_labels(frame, opts.labels_from, class_set, rng)
            if depth_dir.is_dir() and (depth_dir / f"{stem}.png").is_file():
                depth = read_depth_mm(depth_dir / f"{stem}.png")
                dh, dw = depth.shape
                intr_depth = (PinholeIntrinsics.from_opencv(k_depth, dw, dh) if k_depth is not None
                              else PinholeIntrinsics.from_opencv(k_color, *color_size).resized(dw, dh))
                scene.box.add_depth(depth, c2w, intr_depth)  # for the scene box only: no depth maps are written
            scene.add(frame, stem)
        scene.check_kept(pose_dir)
        scene.finish("scannet", src, lut.map_name, classes_json, scene.interleaved_split(opts.test_fraction),
                     f"{opts.test_fraction:.0%} interleaved test", False,
                     label_ids=opts.label_ids, labels_from=opts.labels_from, image_size=opts.image_size)
    return scene.report(labels_note(opts.labels_from))
