"""Importer for Semantic-NeRF's Replica renders (one ``Sequence_*`` folder).

Source layout::

    rgb/rgb_<i>.png                              RGB
    depth/depth_<i>.png                          uint16 z-depth, 1/1000 m (``--depth-scale``)
    semantic_class/semantic_class_<i>.png        Replica class ids (info_semantic.json "classes"; 0 = no label)
    semantic_instance/semantic_instance_<i>.png  Replica object ids
    traj_w_c.txt                                 one row of 16 numbers per frame: 4x4 camera-to-world, OpenCV

Intrinsics follow Semantic-NeRF: square pixels, horizontal field of view ``--hfov`` (90 degrees), principal point at
the image centre ((W - 1) / 2 with integer pixel centres). Class ids are turned into names with the scene's
``info_semantic.json`` (``--semantic-info``; searched beside the sequence and in ``semantic_info/<scene>/``, else the
built-in table of ``replica_to_scannet21.json``) and the names into the class set with that map. The renders are
ground truth: they are written to ``gt_*`` only; input labels come from ``--labels-from``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

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
    opencv_to_opengl,
    output_size,
    read_png,
    read_rgb,
    report,
    require_dir,
    resize_depth,
    resize_rgb,
    rigid_pose,
    stuff_instances_to_zero,
    transforms_meta,
)


@dataclass
class ReplicaImport(ImportOptions):
    """Import a Semantic-NeRF Replica sequence (rgb/, depth/, semantic_class/, semantic_instance/, traj_w_c.txt)."""

    src: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SRC")] = tyro.MISSING  # type: ignore[assignment]
    """Sequence folder (e.g. Replica_Dataset/room_0/Sequence_1)."""
    dst: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DST")] = tyro.MISSING  # type: ignore[assignment]
    """Destination scene folder (data contract)."""
    labels_from: LabelsFrom = "none"
    """Input labels: none (run plift-labels afterwards) or gt-with-noise (simulated from GT; a testing aid)."""
    semantic_info: Optional[Path] = None
    """The scene's info_semantic.json (class id -> name); searched near src when not given."""
    class_map: str = "replica_to_scannet21"
    """Replica class name -> class set map (name in configs/class_maps/ or a JSON path)."""
    hfov: float = 90.0
    """Horizontal field of view of the renders in degrees (Semantic-NeRF: 90)."""
    depth_scale: float = 0.001
    """Metres per depth unit."""
    test_fraction: float = 0.25
    """Share of evenly interleaved test frames (paper: 25%)."""
    seed: int = 0
    """Seed of the simulated labels (gt-with-noise)."""

    def main(self) -> Path:
        return import_replica(self)


def find_semantic_info(src: Path) -> Optional[Path]:
    """info_semantic.json beside the sequence or in a Semantic-NeRF ``semantic_info/<scene>/`` folder."""
    scene = src.parent.name if src.name.lower().startswith("sequence") else src.name
    candidates = [src / "info_semantic.json", src.parent / "info_semantic.json"]
    for base in (src, src.parent, src.parent.parent, src.parent.parent.parent):
        candidates += [base / "semantic_info" / scene / "info_semantic.json", base / scene / "habitat" / "info_semantic.json"]
    return next((c for c in candidates if c.is_file()), None)


def read_semantic_info(path: Path) -> Dict[int, str]:
    """Class id -> name from info_semantic.json's ``classes`` list."""
    try:
        data = json.loads(path.read_text())
        classes = data["classes"]
        table = {int(c["id"]): str(c["name"]) for c in classes}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise PliftDataError(f"expected {{'classes': [{{'id', 'name'}}, ...]}} ({err!r})", path) from None
    table.setdefault(0, "void")
    return table


def import_replica(opts: ReplicaImport) -> Path:
    """Convert one Semantic-NeRF Replica sequence; returns the destination folder."""
    src = Path(opts.src)
    if not src.is_dir():
        raise PliftDataError("source sequence folder not found", src)
    rgb_dir = require_dir(src, "rgb", "rgb_<i>.png")
    sem_dir = require_dir(src, "semantic_class", "semantic_class_<i>.png")
    inst_dir = require_dir(src, "semantic_instance", "semantic_instance_<i>.png")
    depth_dir = src / "depth"
    traj_path = src / "traj_w_c.txt"
    if not traj_path.is_file():
        raise PliftDataError("trajectory file not found (one row of 16 numbers per frame)", traj_path)
    images = list_files(rgb_dir, (".png", ".jpg"), prefix="rgb_")
    if not images or not all(s.isdigit() for s in images):
        raise PliftDataError("expected images named rgb_<index>.png", rgb_dir)
    rows = [line.split() for line in traj_path.read_text().splitlines() if line.strip()]
    if len(rows) != len(images):
        raise PliftDataError(f"frame count mismatch: {len(rows)} poses in traj_w_c.txt but {len(images)} images in rgb/",
                             traj_path)
    try:
        traj = np.asarray(rows, dtype=np.float64)
    except ValueError as err:
        raise PliftDataError(f"poses must be rows of 16 numbers ({err})", traj_path) from None
    if traj.ndim != 2 or traj.shape[1] != 16:
        raise PliftDataError(f"every row must have 16 numbers (a 4x4 matrix), got shape {traj.shape}", traj_path)
    indices = sorted(int(s) for s in images)
    if indices != list(range(len(indices))):
        raise PliftDataError("image indices must run 0..N-1 (rgb_<i>.png matches row i of traj_w_c.txt)", rgb_dir)

    class_set, classes_json = class_set_spec(opts.classes)
    class_map = ClassMap.load(opts.class_map)
    info_path = opts.semantic_info or find_semantic_info(src)
    notes: List[str] = []
    if info_path is not None:
        lut = class_map.lut(class_set, read_semantic_info(Path(info_path)))
    else:
        lut = class_map.lut(class_set)
        notes.append(f"no info_semantic.json found: class ids use the built-in Replica table of {class_map.path.name}")

    first = read_rgb(images[str(indices[0])])
    src_w, src_h = first.shape[1], first.shape[0]
    focal = (src_w / 2.0) / math.tan(math.radians(opts.hfov) / 2.0)
    k = np.array([[focal, 0.0, (src_w - 1) / 2.0], [0.0, focal, (src_h - 1) / 2.0], [0.0, 0.0, 1.0]])
    size = output_size(src_w, src_h, opts.downscale)
    intr = PinholeIntrinsics.from_opencv(k, src_w, src_h).resized(*size)
    rng = np.random.default_rng(opts.seed)
    box = SceneBoxEstimator(max_depth=opts.max_depth)
    kept: List[int] = []
    skipped: List[str] = []
    with SceneWriter(opts.dst, opts.overwrite) as writer:
        for i in track(indices[:: max(1, opts.frame_step)], description="Importing frames", console=CONSOLE):
            c2w_cv = traj[i].reshape(4, 4)
            if not np.all(np.isfinite(c2w_cv)):
                skipped.append(f"rgb_{i}")
                continue
            c2w = opencv_to_opengl(rigid_pose(c2w_cv, traj_path, f"pose of frame {i} (row {i + 1})"))
            rgb = read_rgb(images[str(i)])
            if (rgb.shape[1], rgb.shape[0]) != (src_w, src_h):
                raise PliftDataError(f"image size differs from the first image's {src_w}x{src_h}", images[str(i)])
            frame = Frame(name=f"frame_{i:05d}", c2w_gl=c2w, rgb=resize_rgb(rgb, size))
            sem_path = frame_file(sem_dir, f"semantic_class_{i}", (".png",), "semantic_class label")
            gt_sem = resize_labels(lut.apply(read_png(sem_path), sem_path), size)
            inst_path = frame_file(inst_dir, f"semantic_instance_{i}", (".png",), "semantic_instance label")
            frame.gt_semantics = gt_sem
            frame.gt_instance = stuff_instances_to_zero(gt_sem, resize_labels(read_png(inst_path), size), class_set)
            input_labels(frame, opts.labels_from, class_set, rng)
            if depth_dir.is_dir():
                depth_path = frame_file(depth_dir, f"depth_{i}", (".png",), "depth")
                depth = read_png(depth_path).astype(np.float32) * opts.depth_scale
                box.add_depth(depth, c2w, intr)
                frame.depth_m = resize_depth(depth, size)
            box.add_camera(c2w, intr)
            writer.add(frame)
            kept.append(i)
        if len(kept) < 2:
            raise PliftDataError(f"only {len(kept)} frame(s) with a valid pose", traj_path)
        test_idx = set(interleaved_test_indices(len(kept), opts.test_fraction))
        names = [e["file_path"] for e in writer.frames]
        train = [n for j, n in enumerate(names) if j not in test_idx]
        test = [n for j, n in enumerate(names) if j in test_idx]
        provenance: Dict[str, Any] = {
            "source": "replica", "src": str(src.absolute()), "downscale": opts.downscale, "class_map": lut.map_name,
            "semantic_info": None if info_path is None else str(info_path), "labels_from": opts.labels_from,
            "hfov": opts.hfov, "frame_step": opts.frame_step, "split": f"{opts.test_fraction:.0%} interleaved test",
            "scene_box_from": box.source, "skipped_frames": skipped, "pixel_center_shift": 0.5,
        }
        meta = transforms_meta(intr, classes_json, train, test, box.box(), depth_dir.is_dir(), provenance)
        out = writer.finish(meta)
    report(out, len(kept), len(train), len(test), skipped, notes + labels_note(opts.labels_from))
    return out
