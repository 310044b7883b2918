"""``plift-fusion``: the oracle vote, a multi-view label-fusion baseline without any neural field.

Every training view's 2D labels are back-projected into 3D with the scene's depth and camera poses and voted per
voxel (SemanticFusion-style, with the labels' confidences), then looked up from each test view (its pixels
back-projected with the test view's own depth) and scored with the project's metrics beside the test views' own 2D
labels. It is the ceiling the labels allow: label errors that differ between views are outvoted, systematic ones
(the same error in most views) survive. "Oracle": it is handed every view's depth, the test views' included, which
a lifted field has to learn from the images.

The vote
--------
* Points: a pixel with depth ``d`` (z-depth, the data contract's ``depth_file_path`` times ``depth_unit_scale_factor``)
  lies at ``origin + d / (-dir_cam_z) * dir`` on its camera ray (nerfstudio's rays, so lens distortion is honoured).
  Pixels without depth (0, NaN) give no point.
* Voxels: ``floor(point / voxel_size + GRID_SHIFT)`` (see :data:`GRID_SHIFT`); ``voxel_size`` is in the units of
  transforms.json's camera positions (metres on generated scenes and RGB-D imports).
* Classes: each view casts one vote per voxel it sees: the mean over its pixels in that voxel of
  ``confidence * probability`` (the ``probabilities_path`` npz), or of the one-hot label with confidence 1 when a
  scene has no probabilities. Pixels labelled void do not vote. A voxel's class is the arg-max of its summed votes.
* Instances: per training view (in split order), each thing segment ``(class, 2D id)`` is associated with the 3D
  instances by voxel IoU: the segment's voxels against each 3D instance's voxels (those where it holds the most
  instance votes so far) among the voxels this view sees; segments and instances are matched one-to-one (Hungarian,
  ``scipy.optimize.linear_sum_assignment``) when the IoU reaches ``min_instance_iou``, and an unmatched segment
  starts a new 3D instance. The segment's pixels then vote for their instance as for classes (weight:
  confidence). A voxel whose class is a thing takes the arg-max instance (0 without instance votes); stuff voxels
  take 0. Instance ids are therefore the same in every view (what PQ^scene needs).
* Unvoted: a test pixel without depth, or whose voxel received no class vote, is predicted void. It is scored as the
  void pixels of 2D labels are: wrong for mIoU (a missed pixel of its GT class), no segment for PQ (COCO's rule:
  it stays in the union of the GT segment it belongs to).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import tyro
from jaxtyping import Bool, Float, Int
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from rich.console import Console
from rich.progress import track
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from plift_ns.data.classes import ClassSet
from plift_ns.data.dataparser import PanopticDataParserConfig
from plift_ns.data.label_io import read_label_png, read_probabilities, read_semantics, thing_instances
from plift_ns.errors import PliftDataError, exit_on_data_error
from plift_ns.eval.image_metrics import to_void_id
from plift_ns.eval.metrics import PanopticEvaluator
from plift_ns.eval.visualize import colorize_instances, colorize_semantics, side_by_side, write_png
from plift_ns.io.atomic import atomic_output_dir, atomic_write_json, numpy_json, refuse_existing

CONSOLE = Console(width=120)
DEFAULT_VOXEL_SIZE = 0.1
"""Voxel edge in scene units (metres on generated scenes and RGB-D imports). Smaller voxels keep finer boundaries but
collect fewer views' votes each and leave more test pixels unvoted (scripts/reports/2026-12-01-oracle-vote.md has
the sweep)."""
DEFAULT_MIN_INSTANCE_IOU = 0.25
GRID_SHIFT = (5**0.5 - 1) / 2
"""Voxel faces lie at ``(k - GRID_SHIFT) * voxel_size``: an irrational fraction, so that planes at round coordinates
(a generated room's walls, floor and ceiling) do not fall on voxel faces, where depth quantisation would scatter
their points over two layers of voxels."""
_AXIS_BITS = 21  # voxel coordinates packed into one int64 key: 21 bits per axis (±2^20 voxels)
_AXIS_OFFSET = 1 << (_AXIS_BITS - 1)


# ----------------------------------------------------------------------------------------------------------------------
# geometry: pixels to points, points to voxels
# ----------------------------------------------------------------------------------------------------------------------


def view_points(
    cameras: Cameras, index: int, depth: Float[np.ndarray, "H W"]
) -> Tuple[Float[np.ndarray, "H W 3"], Bool[np.ndarray, "H W"]]:
    """World points of camera ``index``'s pixels at z-depth ``depth`` (in the cameras' units), and which are valid
    (finite positive depth on a ray in front of the camera)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nerfstudio's "non-tuple sequence" indexing warnings
        rays = cameras.generate_rays(camera_indices=index, keep_shape=True)
    origins = rays.origins.double().numpy()
    directions = rays.directions.double().numpy()
    if directions.shape[:2] != depth.shape:
        raise PliftDataError(f"depth map {depth.shape} (H, W) differs from camera {index}'s image {directions.shape[:2]}")
    forward = -cameras.camera_to_worlds[index, :3, 2].double().numpy()
    along = directions @ forward  # cosine between the ray and the optical axis
    valid = np.isfinite(depth) & (depth > 0) & (along > 1e-6)
    t = np.where(valid, depth, 0.0) / np.where(valid, along, 1.0)
    return origins + directions * t[..., None], valid


def voxel_keys(points: Float[np.ndarray, "N 3"], voxel_size: float) -> Int[np.ndarray, " N"]:
    """One int64 key per point: its voxel's integer coordinates ``floor(point / voxel_size + GRID_SHIFT)`` packed
    21 bits each."""
    ijk = np.floor(np.asarray(points, dtype=np.float64) / voxel_size + GRID_SHIFT).astype(np.int64) + _AXIS_OFFSET
    if ijk.size and (ijk.min() < 0 or ijk.max() >= (1 << _AXIS_BITS)):
        raise PliftDataError(f"the scene spans more than 2^{_AXIS_BITS} voxels of size {voxel_size} along an axis "
                             "(use a larger --voxel-size)")
    return (ijk[:, 0] << (2 * _AXIS_BITS)) | (ijk[:, 1] << _AXIS_BITS) | ijk[:, 2]


@dataclass
class VoxelGrid:
    """The voxels hit by the training views' points: sorted unique keys; a voxel's index is its rank."""

    keys: Int[np.ndarray, " V"]
    voxel_size: float

    @classmethod
    def from_points(cls, points: Iterable[Float[np.ndarray, "N 3"]], voxel_size: float) -> "VoxelGrid":
        if not voxel_size > 0:
            raise PliftDataError(f"--voxel-size must be positive, got {voxel_size}")
        chunks = [np.unique(voxel_keys(p, voxel_size)) for p in points]
        keys = np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, np.int64)
        return cls(keys, float(voxel_size))

    @property
    def num_voxels(self) -> int:
        return int(self.keys.size)

    def index(self, points: Float[np.ndarray, "N 3"]) -> Int[np.ndarray, " N"]:
        """Voxel index of each point, -1 where the point's voxel is not in the grid."""
        keys = voxel_keys(points, self.voxel_size)
        pos = np.clip(np.searchsorted(self.keys, keys), 0, max(self.num_voxels - 1, 0))
        found = self.keys[pos] == keys if self.num_voxels else np.zeros(keys.shape, bool)
        return np.where(found, pos, -1)


# ----------------------------------------------------------------------------------------------------------------------
# the vote
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class ViewLabels:
    """One view's 2D labels: class ids (void -1), per-view instance ids (0 = none), confidence, optional
    class distribution."""

    semantics: Int[np.ndarray, "H W"]
    instance: Int[np.ndarray, "H W"]
    confidence: Float[np.ndarray, "H W"]
    probability: Optional[Float[np.ndarray, "H W C"]] = None


@dataclass
class VoxelLabels:
    """The vote's outcome per voxel of a grid: class (-1 where nothing voted) and scene-wide instance id."""

    grid: VoxelGrid
    semantics: Int[np.ndarray, " V"]
    instance: Int[np.ndarray, " V"]
    class_votes: Float[np.ndarray, "V C"]
    num_instances: int

    def lookup(self, points: Float[np.ndarray, "H W 3"], valid: Bool[np.ndarray, "H W"]
               ) -> Tuple[Int[np.ndarray, "H W"], Int[np.ndarray, "H W"]]:
        """Class (-1 = void: no depth or no vote) and instance maps of a view's back-projected pixels."""
        idx = np.where(valid.reshape(-1), self.grid.index(points.reshape(-1, 3)), -1)
        sem = np.where(idx >= 0, self.semantics[idx], -1)
        inst = np.where(sem >= 0, self.instance[idx], 0)
        return sem.reshape(valid.shape), inst.reshape(valid.shape)


@dataclass
class LabelVote:
    """Accumulates the training views' votes on a fixed :class:`VoxelGrid` (add views with :meth:`add_view`)."""

    grid: VoxelGrid
    thing_mask: Bool[np.ndarray, " C"]
    min_instance_iou: float = DEFAULT_MIN_INSTANCE_IOU
    class_votes: Float[np.ndarray, "V C"] = field(init=False)
    num_instances: int = field(init=False, default=0)
    _instance_votes: sparse.csr_matrix = field(init=False)

    def __post_init__(self) -> None:
        self.thing_mask = np.asarray(self.thing_mask, dtype=bool)
        self.class_votes = np.zeros((self.grid.num_voxels, self.thing_mask.size), dtype=np.float64)
        self._instance_votes = sparse.csr_matrix((self.grid.num_voxels, 0), dtype=np.float64)

    def add_view(self, points: Float[np.ndarray, "H W 3"], valid: Bool[np.ndarray, "H W"], labels: ViewLabels
                 ) -> Dict[Tuple[int, int], int]:
        """Vote with one view's labels; returns the association of its thing segments, {(class, 2D id): 3D id}
        (3D ids as :meth:`result` numbers them)."""
        sem = labels.semantics.reshape(-1)
        idx = np.where(valid.reshape(-1), self.grid.index(points.reshape(-1, 3)), -1)
        seen = (idx >= 0) & (sem >= 0)
        voxel = idx[seen]
        _, local, counts = np.unique(voxel, return_inverse=True, return_counts=True)
        share = 1.0 / counts[local]  # each view casts one vote per voxel: its pixels there share it
        conf = labels.confidence.reshape(-1)[seen].astype(np.float64)
        if labels.probability is not None:
            dist = labels.probability.reshape(-1, self.thing_mask.size)[seen].astype(np.float64)
        else:
            dist = np.eye(self.thing_mask.size)[sem[seen]]
        np.add.at(self.class_votes, voxel, dist * (conf * share)[:, None])

        inst = labels.instance.reshape(-1)[seen]
        cls = sem[seen]
        thing = self.thing_mask[cls] & (inst > 0)
        if not thing.any():
            return {}
        segments, seg = np.unique(np.stack([cls[thing], inst[thing]], 1), axis=0, return_inverse=True)
        seg = seg.reshape(-1)
        instances = self._associate(seg, voxel[thing], np.unique(voxel), len(segments))
        weight = conf[thing] * share[thing]
        new = sparse.csr_matrix((weight, (voxel[thing], instances[seg])), shape=(self.grid.num_voxels, self.num_instances))
        self._instance_votes.resize((self.grid.num_voxels, self.num_instances))
        self._instance_votes = (self._instance_votes + new).tocsr()
        return {(int(c), int(i)): int(k) + 1 for (c, i), k in zip(segments, instances)}

    def _associate(self, seg: Int[np.ndarray, " P"], voxel: Int[np.ndarray, " P"], visible: Int[np.ndarray, " U"],
                   num_segments: int) -> Int[np.ndarray, " S"]:
        """3D instance of each of a view's segments (new ones appended): Hungarian on the voxel IoU."""
        iou = self.instance_iou(seg, voxel, visible, num_segments)
        out = np.full(num_segments, -1, dtype=np.int64)
        if iou.shape[1]:
            rows, cols = linear_sum_assignment(-iou)
            ok = iou[rows, cols] >= self.min_instance_iou
            out[rows[ok]] = cols[ok]
        fresh = out < 0
        out[fresh] = self.num_instances + np.arange(int(fresh.sum()))
        self.num_instances += int(fresh.sum())
        return out

    def instance_iou(self, seg: Int[np.ndarray, " P"], voxel: Int[np.ndarray, " P"], visible: Int[np.ndarray, " U"],
                     num_segments: int) -> Float[np.ndarray, "S K"]:
        """IoU of each segment's voxel set with each 3D instance's voxels among the ``visible`` voxels of the view (a
        voxel belongs to the instance holding most of its instance votes so far)."""
        votes = self._instance_votes[visible]
        voted = np.nonzero(np.asarray(votes.sum(axis=1)).reshape(-1) > 0)[0]
        owner = np.asarray(votes[voted].argmax(axis=1)).reshape(-1) if voted.size else np.zeros(0, np.int64)
        members = sparse.csr_matrix((np.ones(voted.size), (voted, owner)), shape=votes.shape)
        local = np.searchsorted(visible, voxel)
        cover = sparse.csr_matrix((np.ones(seg.size), (seg, local)), shape=(num_segments, visible.size))
        cover.data[:] = 1.0  # a voxel set: duplicates summed, then set to one
        inter = np.asarray((cover @ members).todense())
        union = np.asarray(cover.sum(axis=1)).reshape(-1, 1) + np.asarray(members.sum(axis=0)).reshape(1, -1) - inter
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)

    def result(self) -> VoxelLabels:
        """Arg-max class per voxel (-1 without votes); arg-max instance (ids from 1, in the order instances were
        started) on thing voxels, 0 elsewhere."""
        has_class = self.class_votes.sum(axis=1) > 0
        sem = np.where(has_class, self.class_votes.argmax(axis=1), -1)
        votes = self._instance_votes.tocsr()
        has_inst = np.asarray(votes.sum(axis=1)).reshape(-1) > 0
        best = np.asarray(votes.argmax(axis=1)).reshape(-1) if votes.shape[1] else np.zeros(sem.size, np.int64)
        is_thing = (sem >= 0) & self.thing_mask[np.clip(sem, 0, None)]
        inst = np.where(is_thing & has_inst, best + 1, 0)
        return VoxelLabels(self.grid, sem, inst, self.class_votes, int(np.unique(inst[inst > 0]).size))


# ----------------------------------------------------------------------------------------------------------------------
# a scene in the data contract
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class SceneViews:
    """One split of a scene: cameras (normalised world), label / depth files and the depth scale to that world."""

    outputs: DataparserOutputs
    depth_scale: float
    class_set: ClassSet

    @property
    def cameras(self) -> Cameras:
        return self.outputs.cameras

    def __len__(self) -> int:
        return len(self.outputs.image_filenames)

    def name(self, i: int) -> str:
        return str(self.outputs.metadata["frame_names"][i])

    def files(self, key: str) -> Optional[List[Path]]:
        return self.outputs.metadata.get(f"{key}_filenames")

    def size(self, i: int) -> Tuple[int, int]:
        return int(self.cameras.height[i]), int(self.cameras.width[i])

    def points(self, i: int) -> Tuple[Float[np.ndarray, "H W 3"], Bool[np.ndarray, "H W"]]:
        """Back-projected pixels of view ``i`` (normalised world) and their validity."""
        path = self.files("depth_file")[i]  # type: ignore[index]
        if path.suffix.lower() != ".png":
            raise PliftDataError("depth maps must be single-channel PNGs (z-depth in depth_unit_scale_factor units)", path)
        depth = read_label_png(path, self.size(i)).astype(np.float64) * self.depth_scale
        return view_points(self.cameras, i, depth)

    def labels(self, i: int) -> ViewLabels:
        """The view's 2D labels (semantics with void -1, thing instance ids, confidence, class distribution)."""
        size = self.size(i)
        sem = read_semantics(self.files("semantics")[i], self.class_set, size)  # type: ignore[index]
        inst, _ = thing_instances(sem, read_label_png(self.files("instance")[i], size), self.class_set)  # type: ignore[index]
        prob_files = self.files("probabilities")
        if prob_files is None:
            return ViewLabels(sem, inst, (sem >= 0).astype(np.float32))
        prob, conf = read_probabilities(prob_files[i], self.class_set.num_classes, size)
        return ViewLabels(sem, inst, conf.astype(np.float32), prob.astype(np.float32))

    def ground_truth(self, i: int) -> Optional[Tuple[Int[np.ndarray, "H W"], Int[np.ndarray, "H W"]]]:
        gt_sem, gt_inst = self.files("gt_semantics"), self.files("gt_instance")
        if gt_sem is None or gt_inst is None:
            return None
        size = self.size(i)
        return read_semantics(gt_sem[i], self.class_set, size), read_label_png(gt_inst[i], size)


def load_scene(data: Path) -> Tuple[SceneViews, SceneViews]:
    """The training and test views of a scene folder, checked for depth maps."""
    data = Path(data)
    parser = PanopticDataParserConfig(data=data).setup()
    train, test = parser.get_dataparser_outputs("train"), parser.get_dataparser_outputs("test")
    meta_path = data if data.suffix == ".json" else data / "transforms.json"
    if train.metadata.get("depth_file_filenames") is None or test.metadata.get("depth_file_filenames") is None:
        raise PliftDataError(
            "the frames have no depth maps ('depth_file_path'): the oracle vote back-projects labels with depth; "
            "add z-depth PNGs (e.g. an RGB-D sensor's, in millimetres with depth_unit_scale_factor 0.001) as "
            "plift-synth and plift-import write them", meta_path,
        )
    unit = float(json.loads(meta_path.read_text()).get("depth_unit_scale_factor", 0.001))
    if not unit > 0:
        raise PliftDataError(f"depth_unit_scale_factor must be positive, got {unit}", meta_path)
    class_set = train.metadata["class_set"]
    return (SceneViews(train, unit * train.dataparser_scale, class_set),
            SceneViews(test, unit * test.dataparser_scale, class_set))


def fuse_views(views: SceneViews, voxel_size: float, min_instance_iou: float = DEFAULT_MIN_INSTANCE_IOU,
               show_progress: bool = False) -> VoxelLabels:
    """The vote over all of ``views`` (``voxel_size`` in the units of transforms.json)."""
    scale = float(views.outputs.dataparser_scale)
    order = range(len(views))
    grid = VoxelGrid.from_points((p[v] for p, v in (views.points(i) for i in order)), voxel_size * scale)
    if grid.num_voxels == 0:
        raise PliftDataError("no training pixel has a valid depth (all depth maps are 0 or the cameras look away)",
                             views.files("depth_file")[0].parent)  # type: ignore[index]
    vote = LabelVote(grid, views.class_set.thing_mask(), min_instance_iou)
    for i in track(order, description="Voting") if show_progress else order:
        vote.add_view(*views.points(i), views.labels(i))
    return vote.result()


def render_views(fused: VoxelLabels, views: SceneViews) -> Iterator[Tuple[int, Int[np.ndarray, "H W"], Int[np.ndarray, "H W"]]]:
    """(view index, class map with void -1, instance map) of every view, looked up in the vote."""
    for i in range(len(views)):
        yield (i, *fused.lookup(*views.points(i)))


def oracle_vote(
    data: Path, voxel_size: float = DEFAULT_VOXEL_SIZE, min_instance_iou: float = DEFAULT_MIN_INSTANCE_IOU,
    image_dir: Optional[Path] = None, label_dir: Optional[Path] = None, show_progress: bool = False,
) -> Dict[str, Any]:
    """Fuse the training views' labels, render the test views and score them (``oracle_vote``) beside the test views'
    own 2D labels (``labels_2d``); the rendered maps go to ``label_dir`` (PNG ids) and ``image_dir`` (colour)."""
    train, test = load_scene(data)
    class_set = train.class_set
    fused = fuse_views(train, voxel_size, min_instance_iou, show_progress)
    vote_eval = PanopticEvaluator(class_set, void_id=class_set.void_id)
    label_eval = PanopticEvaluator(class_set, void_id=class_set.void_id)
    unvoted = scored = 0
    for i, sem, inst in render_views(fused, test):
        stem = Path(test.name(i)).stem
        labels = test.labels(i)
        gt = test.ground_truth(i)
        if label_dir is not None:
            write_png(label_dir / "semantics" / f"{stem}.png", to_void_id(sem, class_set))
            write_png(label_dir / "instance" / f"{stem}.png", inst.astype(np.uint16))
        if image_dir is not None:
            write_png(image_dir / f"{stem}.png", _panels(class_set, gt, (labels.semantics, labels.instance), (sem, inst)))
        if gt is None:
            continue
        vote_eval.add_frame(sem, inst, gt[0], gt[1], name=test.name(i))
        label_eval.add_frame(labels.semantics, labels.instance, gt[0], gt[1], name=test.name(i))
        unvoted += int(np.count_nonzero((sem < 0) & (gt[0] >= 0)))
        scored += int(np.count_nonzero(gt[0] >= 0))
    scores = {"oracle_vote": vote_eval.compute(), "labels_2d": label_eval.compute()} if scored else {}
    return {
        **scores, "class_set": class_set.name, "voxel_size": voxel_size, "min_instance_iou": min_instance_iou,
        "num_voxels": fused.grid.num_voxels, "num_instances": fused.num_instances,
        "train_views": len(train), "test_views": len(test),
        "unvoted_fraction": unvoted / scored if scored else None,
    }


def _panels(class_set: ClassSet, gt: Optional[Tuple[np.ndarray, np.ndarray]], labels: Tuple[np.ndarray, np.ndarray],
            vote: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Two rows of colour panels (classes, instances): GT (when present), the view's 2D labels, the oracle vote."""
    maps = ([("GT", gt)] if gt is not None else []) + [("2D labels", labels), ("oracle vote", vote)]
    classes = side_by_side([(title, colorize_semantics(s, class_set)) for title, (s, _) in maps])
    instances = side_by_side([(f"{title} ids", colorize_instances(s, i, class_set)) for title, (s, i) in maps])
    return np.concatenate([classes, instances], axis=0)


# ----------------------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class Fusion:
    """The oracle vote: fuse the training views' 2D labels in 3D with the scene's depth, render and score the test
    views beside their 2D labels (PQ^scene, PQ, mIoU). Needs depth maps; scores need the test views' GT."""

    data: Path
    """Scene folder (holding transforms.json) with per-frame depth_file_path."""
    voxel_size: float = DEFAULT_VOXEL_SIZE
    """Voxel edge in the units of transforms.json's camera positions (metres on generated scenes)."""
    min_instance_iou: float = DEFAULT_MIN_INSTANCE_IOU
    """Voxel IoU at which a view's 2D segment joins a 3D instance (below: a new instance)."""
    output_dir: Optional[Path] = None
    """Folder for metrics.json, semantics/ + instance/ (label PNGs) and views/ (colour panels); default
    outputs/<scene>/oracle-vote."""
    save_images: bool = True
    """Write the test views' label PNGs and colour panels beside metrics.json."""
    overwrite: bool = False
    """Replace a non-empty --output-dir."""

    def main(self) -> Dict[str, Any]:
        if not self.voxel_size > 0:
            raise PliftDataError(f"--voxel-size must be positive, got {self.voxel_size}")
        output = self.output_dir or Path("outputs") / Path(self.data).resolve().name / "oracle-vote"
        refuse_existing(output, self.overwrite, is_dir=True)
        with atomic_output_dir(output, self.overwrite) as tmp:
            results = oracle_vote(
                self.data, self.voxel_size, self.min_instance_iou, image_dir=tmp / "views" if self.save_images else None,
                label_dir=tmp if self.save_images else None, show_progress=True,
            )
            results["scene"] = str(self.data)
            atomic_write_json(tmp / "metrics.json", results, indent=2, default=numpy_json, end="")
        print_scores(results)
        CONSOLE.print(f"[bold green]Wrote {output / 'metrics.json'}" + (" and the rendered test views" if self.save_images else ""))
        return results


def print_scores(results: Dict[str, Any]) -> None:
    """PQ^scene / PQ / mIoU (percent) of the 2D labels and the oracle vote, or why there are none."""
    if "oracle_vote" not in results:
        CONSOLE.print("The test views have no ground truth (gt_semantics_path / gt_instance_path): nothing scored.")
        return
    for name, key in (("2D labels (input)", "labels_2d"), ("oracle vote", "oracle_vote")):
        row = results[key]
        CONSOLE.print(f"{name:>18}: PQ^scene {100 * row['PQ_scene']:.1f}  PQ {100 * row['PQ']:.1f}  "
                      f"mIoU {100 * row['mIoU']:.1f}")
    CONSOLE.print(f"unvoted test pixels (predicted void): {100 * results['unvoted_fraction']:.2f}%")


def entrypoint() -> None:
    """Console script ``plift-fusion``: bad input ends in one line and exit status 2."""
    exit_on_data_error("plift-fusion", lambda: tyro.cli(Fusion).main(), CONSOLE)


if __name__ == "__main__":
    entrypoint()
