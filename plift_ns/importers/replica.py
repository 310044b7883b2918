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
from typing import Dict, List, Optional

import numpy as np
import tyro
from typing_extensions import Annotated

from plift_ns.data.class_maps import ClassMap
from plift_ns.errors import PliftDataError
from plift_ns.importers.images import output_size, read_image_size, read_png
from plift_ns.importers.labels import input_labels, labels_note, read_panoptic_labels
from plift_ns.importers.layout import frame_file, list_files, source_folders
from plift_ns.importers.options import GroundTruthImportOptions, class_set_spec
from plift_ns.importers.poses import PinholeIntrinsics, opencv_to_opengl, rigid_pose
from plift_ns.importers.writer import Frame, SceneImport


@dataclass
class ReplicaImport(GroundTruthImportOptions):
    """Import a Semantic-NeRF Replica sequence (rgb/, depth/, semantic_class/, semantic_instance/, traj_w_c.txt)."""

    src: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SRC")] = tyro.MISSING  # type: ignore[assignment]
    """Sequence folder (e.g. Replica_Dataset/room_0/Sequence_1)."""
    dst: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DST")] = tyro.MISSING  # type: ignore[assignment]
    """Destination scene folder (data contract)."""
    semantic_info: Optional[Path] = None
    """The scene's info_semantic.json (class id -> name); searched near src when not given."""
    class_map: str = "replica_to_scannet21"
    """Replica class name -> class set map (name in configs/class_maps/ or a JSON path)."""
    hfov: float = 90.0
    """Horizontal field of view of the renders in degrees (Semantic-NeRF: 90)."""
    depth_scale: float = 0.001
    """Metres per depth unit."""

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
    src, rgb_dir, sem_dir, inst_dir = source_folders(opts.src, "sequence", [
        ("rgb", "rgb_<i>.png"), ("semantic_class", "semantic_class_<i>.png"),
        ("semantic_instance", "semantic_instance_<i>.png")])
    depth_dir = src / "depth"
    traj_path = src / "traj_w_c.txt"
    if not traj_path.is_file():
        raise PliftDataError("trajectory file not found (one row of 16 numbers per frame)", traj_path)
    images = list_files(rgb_dir, (".png", ".jpg"), prefix="rgb_")
    if not images or not all(s.isdigit() for s in images):
        raise PliftDataError("expected images named rgb_<index>.png", rgb_dir)
    traj = _read_trajectory(traj_path, len(images))
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

    src_size = read_image_size(images[str(indices[0])])
    focal = (src_size[0] / 2.0) / math.tan(math.radians(opts.hfov) / 2.0)
    k = np.array([[focal, 0.0, (src_size[0] - 1) / 2.0], [0.0, focal, (src_size[1] - 1) / 2.0], [0.0, 0.0, 1.0]])
    size = output_size(*src_size, opts.downscale)
    intr = PinholeIntrinsics.from_opencv(k, *src_size).resized(*size)
    rng = np.random.default_rng(opts.seed)
    with SceneImport(opts.dst, opts, intr) as scene:
        for i, c2w in scene.frames(indices[:: max(1, opts.frame_step)], lambda i: _pose(traj, i, traj_path),
                                   "rgb_{}".format):
            frame = Frame.from_image(f"frame_{i:05d}", c2w, images[str(i)], src_size, size, copy_jpeg=False)
            frame.gt_semantics, frame.gt_instance = read_panoptic_labels(
                frame_file(sem_dir, f"semantic_class_{i}", (".png",), "semantic_class label"),
                frame_file(inst_dir, f"semantic_instance_{i}", (".png",), "semantic_instance label"), lut, size)
            input_labels(frame, opts.labels_from, class_set, rng)
            if depth_dir.is_dir():
                depth_path = frame_file(depth_dir, f"depth_{i}", (".png",), "depth")
                scene.add_depth(frame, read_png(depth_path).astype(np.float32) * opts.depth_scale, size)
            scene.add(frame, i)
        scene.check_kept(traj_path)
        scene.finish("replica", src, lut.map_name, classes_json, scene.interleaved_split(opts.test_fraction),
                     f"{opts.test_fraction:.0%} interleaved test", depth_dir.is_dir(),
                     semantic_info=None if info_path is None else str(info_path), labels_from=opts.labels_from,
                     hfov=opts.hfov)
    return scene.report(notes + labels_note(opts.labels_from))


def _pose(traj: np.ndarray, i: int, path: Path) -> Optional[np.ndarray]:
    """OpenGL camera-to-world of frame ``i`` (row ``i`` of traj_w_c.txt); None for a NaN/inf row."""
    c2w_cv = traj[i].reshape(4, 4)
    if not np.all(np.isfinite(c2w_cv)):
        return None
    return opencv_to_opengl(rigid_pose(c2w_cv, path, f"pose of frame {i} (row {i + 1})"))


def _read_trajectory(path: Path, num_images: int) -> np.ndarray:
    """traj_w_c.txt as (N, 16): one row of a 4x4 camera-to-world matrix per image."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(rows) != num_images:
        raise PliftDataError(f"frame count mismatch: {len(rows)} poses in traj_w_c.txt but {num_images} images in rgb/",
                             path)
    try:
        traj = np.asarray(rows, dtype=np.float64)
    except ValueError as err:
        raise PliftDataError(f"poses must be rows of 16 numbers ({err})", path) from None
    if traj.ndim != 2 or traj.shape[1] != 16:
        raise PliftDataError(f"every row must have 16 numbers (a 4x4 matrix), got shape {traj.shape}", path)
    return traj
