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
from typing import Any, Dict, List, Literal, Optional

import numpy as np
import tyro
from rich.progress import track
from typing_extensions import Annotated

from plift_ns.data.class_maps import ClassMap
from plift_ns.data.label_io import resize_labels
from plift_ns.errors import PliftDataError
from plift_ns.importers.common import (
    CONSOLE,
    Frame,
    ImportOptions,
    LabelsFrom,
    PinholeIntrinsics,
    SceneBoxEstimator,
    SceneWriter,
    class_set_spec,
    frame_file,
    input_labels,
    interleaved_test_indices,
    labels_note,
    list_files,
    output_size,
    read_intrinsic_matrix,
    read_opencv_pose,
    read_png,
    read_rgb,
    report,
    require_dir,
    resize_rgb,
    stuff_instances_to_zero,
    transforms_meta,
)

NUM_NYU40 = 40


@dataclass
class ScanNetImport(ImportOptions):
    """Import a ScanNet export (color/, pose/, intrinsic/, label-filt/, instance-filt/, optional depth/)."""

    src: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SRC")] = tyro.MISSING  # type: ignore[assignment]
    """Scan folder (e.g. scans/scene0050_02 after exporting the .sens file and unzipping the 2D labels)."""
    dst: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DST")] = tyro.MISSING  # type: ignore[assignment]
    """Destination scene folder (data contract)."""
    labels_from: LabelsFrom = "none"
    """Input labels: none (run plift-labels afterwards) or gt-with-noise (simulated from GT; a testing aid)."""
    label_ids: Literal["nyu40", "scannet"] = "nyu40"
    """What label-filt holds: NYU40 ids, or raw ScanNet label ids (then --label-map-tsv is needed)."""
    label_map_tsv: Optional[Path] = None
    """scannetv2-labels.combined.tsv (columns 'id' and 'nyu40id'), for --label-ids scannet."""
    class_map: str = "nyu40_to_scannet21"
    """NYU40 id -> class set map (name in configs/class_maps/ or a JSON path)."""
    image_size: Literal["labels", "color"] = "labels"
    """Common resolution before --downscale: the label images' (640x480) or the colour images' (1296x968)."""
    test_fraction: float = 0.25
    """Share of evenly interleaved test frames (paper: 25%)."""
    seed: int = 0
    """Seed of the simulated labels (gt-with-noise)."""

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
    src = Path(opts.src)
    if not src.is_dir():
        raise PliftDataError("source scan folder not found", src)
    color_dir = require_dir(src, "color", "<i>.jpg")
    pose_dir = require_dir(src, "pose", "4x4 camera-to-world text files")
    label_dir = require_dir(src, "label-filt", "unzip <scan>_2d-label-filt.zip")
    inst_dir = require_dir(src, "instance-filt", "unzip <scan>_2d-instance-filt.zip")
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
    for folder, suffix in ((pose_dir, ".txt"), (label_dir, ".png"), (inst_dir, ".png")):
        files = list_files(folder, (suffix,))
        if len(files) != len(images):
            missing = [s for s in images if s not in files]
            where = folder / f"{missing[0]}{suffix}" if missing else folder
            raise PliftDataError(f"frame count mismatch: color/ has {len(images)} images, {folder.name}/ has "
                                 f"{len(files)} files", where)

    class_set, classes_json = class_set_spec(opts.classes)
    lut = ClassMap.load(opts.class_map).lut(class_set)
    stems = list(images)[:: max(1, opts.frame_step)]
    first = read_rgb(images[stems[0]])
    color_w, color_h = first.shape[1], first.shape[0]
    label_shape = read_png(frame_file(label_dir, stems[0], (".png",), "label-filt label")).shape
    base_w, base_h = (label_shape[1], label_shape[0]) if opts.image_size == "labels" else (color_w, color_h)
    size = output_size(base_w, base_h, opts.downscale)
    intr = PinholeIntrinsics.from_opencv(k_color, color_w, color_h).resized(*size)
    k_depth_path = src / "intrinsic" / "intrinsic_depth.txt"
    k_depth = read_intrinsic_matrix(k_depth_path) if depth_dir.is_dir() and k_depth_path.is_file() else None
    rng = np.random.default_rng(opts.seed)
    box = SceneBoxEstimator(max_depth=opts.max_depth)
    skipped: List[str] = []
    kept: List[str] = []
    with SceneWriter(opts.dst, opts.overwrite) as writer:
        for stem in track(stems, description="Importing frames", console=CONSOLE):
            c2w = read_opencv_pose(pose_dir, stem)
            if c2w is None:
                skipped.append(stem)
                continue
            rgb = read_rgb(images[stem])
            if (rgb.shape[1], rgb.shape[0]) != (color_w, color_h):
                raise PliftDataError(f"image size differs from the first image's {color_w}x{color_h}", images[stem])
            frame = Frame(name=stem, c2w_gl=c2w)
            if size == (color_w, color_h) and images[stem].suffix.lower() in (".jpg", ".jpeg"):
                frame.rgb_source = images[stem]
            else:
                frame.rgb = resize_rgb(rgb, size)
            sem_path = frame_file(label_dir, stem, (".png",), "label-filt label")
            gt_sem = resize_labels(lut.apply(_nyu40(read_png(sem_path), sem_path, raw_lut), sem_path), size)
            inst_path = frame_file(inst_dir, stem, (".png",), "instance-filt label")
            frame.gt_semantics = gt_sem
            frame.gt_instance = stuff_instances_to_zero(gt_sem, resize_labels(read_png(inst_path), size), class_set)
            input_labels(frame, opts.labels_from, class_set, rng)
            if depth_dir.is_dir() and (depth_dir / f"{stem}.png").is_file():
                depth = read_png(depth_dir / f"{stem}.png").astype(np.float32) / 1000.0
                dh, dw = depth.shape
                intr_depth = (PinholeIntrinsics.from_opencv(k_depth, dw, dh) if k_depth is not None
                              else PinholeIntrinsics.from_opencv(k_color, color_w, color_h).resized(dw, dh))
                box.add_depth(depth, c2w, intr_depth)
            box.add_camera(c2w, intr)
            writer.add(frame)
            kept.append(stem)
        if len(kept) < 2:
            raise PliftDataError(f"only {len(kept)} frame(s) with a valid pose", pose_dir)
        test_idx = set(interleaved_test_indices(len(kept), opts.test_fraction))
        names = [e["file_path"] for e in writer.frames]
        train = [n for j, n in enumerate(names) if j not in test_idx]
        test = [n for j, n in enumerate(names) if j in test_idx]
        provenance: Dict[str, Any] = {
            "source": "scannet", "src": str(src.absolute()), "downscale": opts.downscale, "class_map": lut.map_name,
            "label_ids": opts.label_ids, "labels_from": opts.labels_from, "image_size": opts.image_size,
            "frame_step": opts.frame_step, "split": f"{opts.test_fraction:.0%} interleaved test",
            "scene_box_from": box.source, "skipped_frames": skipped, "pixel_center_shift": 0.5,
        }
        meta = transforms_meta(intr, classes_json, train, test, box.box(), False, provenance)
        out = writer.finish(meta)
    report(out, len(kept), len(train), len(test), skipped, labels_note(opts.labels_from))
    return out
