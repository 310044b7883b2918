"""Writing an imported scene: frames in the output resolution (:class:`Frame`) written by :class:`SceneWriter` into a
temporary sibling of the destination that replaces it only once complete (:mod:`plift_ns.io.atomic`), and
:class:`SceneImport`, the part every importer shares around reading its own layout (scene box, kept and skipped
frames, split, transforms.json, report)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import track

from plift_ns.data.label_io import write_label_png
from plift_ns.errors import PliftDataError
from plift_ns.importers.images import read_rgb, resize_depth, resize_rgb
from plift_ns.importers.options import ImportOptions
from plift_ns.importers.poses import PIXEL_CENTER_SHIFT, PinholeIntrinsics
from plift_ns.importers.scene_box import SceneBoxEstimator
from plift_ns.io.atomic import atomic_output_dir

CONSOLE = Console(width=120)


@dataclass
class Frame:
    """One imported frame, in the output resolution; label arrays are class-set ids (void = the class set's void)."""

    name: str
    c2w_gl: np.ndarray
    rgb: Optional[np.ndarray] = None
    rgb_source: Optional[Path] = None
    """Copy this file as the image instead of encoding ``rgb`` (used when no resampling is needed)."""
    semantics: Optional[np.ndarray] = None
    instance: Optional[np.ndarray] = None
    probability: Optional[np.ndarray] = None
    confidence: Optional[np.ndarray] = None
    gt_semantics: Optional[np.ndarray] = None
    gt_instance: Optional[np.ndarray] = None
    depth_m: Optional[np.ndarray] = None

    @classmethod
    def from_image(cls, name: str, c2w_gl: np.ndarray, path: Path, src_size: Tuple[int, int], size: Tuple[int, int],
                   copy_jpeg: bool = True) -> "Frame":
        """A frame with the image at ``path`` (which must be ``src_size`` = (width, height), like the first image)
        resampled to ``size``; with ``copy_jpeg`` a JPEG that needs no resampling is copied as it is."""
        rgb = read_rgb(path)
        if (rgb.shape[1], rgb.shape[0]) != tuple(src_size):
            raise PliftDataError(f"image size {rgb.shape[1]}x{rgb.shape[0]} differs from the first image's "
                                 f"{src_size[0]}x{src_size[1]}", path)
        if copy_jpeg and tuple(size) == tuple(src_size) and path.suffix.lower() in (".jpg", ".jpeg"):
            return cls(name=name, c2w_gl=c2w_gl, rgb_source=path)
        return cls(name=name, c2w_gl=c2w_gl, rgb=resize_rgb(rgb, size))


class SceneWriter:
    """Writes a data-contract scene's files into ``folder``: frames with :meth:`add`, then transforms.json."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.frames: List[Dict[str, Any]] = []

    def _path(self, sub: str, name: str) -> Tuple[Path, str]:
        rel = f"{sub}/{name}"
        (self.folder / sub).mkdir(exist_ok=True)
        return self.folder / rel, rel

    def add(self, frame: Frame) -> Dict[str, Any]:
        """Write a frame's files; returns (and records) its ``frames`` entry. GT goes only to ``gt_*`` keys."""
        if frame.rgb_source is not None:
            path, rel = self._path("images", f"{frame.name}{frame.rgb_source.suffix.lower()}")
            shutil.copyfile(frame.rgb_source, path)
        elif frame.rgb is not None:
            path, rel = self._path("images", f"{frame.name}.png")
            Image.fromarray(frame.rgb).save(path)
        else:
            raise ValueError("a frame needs rgb or rgb_source")
        entry: Dict[str, Any] = {"file_path": rel, "transform_matrix": [[float(v) for v in row] for row in frame.c2w_gl]}
        if (frame.semantics is None) != (frame.instance is None):
            raise ValueError("semantics and instance come together")
        for key, sub, array, dtype in (
            ("semantics_path", "semantics", frame.semantics, None),
            ("instance_path", "instance", frame.instance, np.uint16),
            ("gt_semantics_path", "gt_semantics", frame.gt_semantics, None),
            ("gt_instance_path", "gt_instance", frame.gt_instance, np.uint16),
        ):
            if array is None:
                continue
            path, entry[key] = self._path(sub, f"{frame.name}.png")
            write_label_png(path, array, dtype)
        if frame.probability is not None:
            path, entry["probabilities_path"] = self._path("probabilities", f"{frame.name}.npz")
            conf = frame.confidence if frame.confidence is not None else np.ones(frame.probability.shape[:2])
            np.savez_compressed(path, probability=frame.probability.astype(np.float16),
                                confidence=np.asarray(conf).astype(np.float16))
        if frame.depth_m is not None:
            path, entry["depth_file_path"] = self._path("depth", f"{frame.name}.png")
            mm = np.clip(np.rint(np.nan_to_num(frame.depth_m, nan=0.0, posinf=0.0) * 1000.0), 0, 65535)
            Image.fromarray(mm.astype(np.uint16)).save(path)
        self.frames.append(entry)
        return entry

    def write_transforms(self, meta: Dict[str, Any]) -> None:
        """transforms.json: ``meta`` + the frames."""
        (self.folder / "transforms.json").write_text(json.dumps({**meta, "frames": self.frames}, indent=1))


def transforms_meta(intr: PinholeIntrinsics, panoptic_classes: Union[str, Dict[str, Any]], train: Iterable[str],
                    test: Iterable[str], scene_box: List[List[float]], has_depth: bool,
                    provenance: Dict[str, Any]) -> Dict[str, Any]:
    """Top-level transforms.json fields of an imported scene (``frames`` is added by the writer)."""
    meta: Dict[str, Any] = {
        "camera_model": "OPENCV",
        **intr.to_json(),
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        "train_filenames": list(train),
        "test_filenames": list(test),
        "scene_box": scene_box,
        "panoptic_classes": panoptic_classes,
        "import": provenance,
    }
    if has_depth:
        meta["depth_unit_scale_factor"] = 0.001
    return meta


def interleaved_test_indices(n: int, test_fraction: float = 0.25) -> List[int]:
    """Evenly interleaved test frames (never the first one): ``round(n * test_fraction)`` of ``n``, at least one."""
    if n < 2:
        raise PliftDataError(f"need at least 2 frames to split into train and test, found {n}")
    k = min(n - 1, max(1, int(round(n * test_fraction))))
    return sorted({int((j + 0.5) * n / k) for j in range(k)})


def report(output: Path, num_frames: int, num_train: int, num_test: int, skipped: Sequence[str], notes: Sequence[str]) -> None:
    """Print a short summary of an import."""
    CONSOLE.print(f"[bold green]Wrote {output}[/]: {num_frames} frames ({num_train} train, {num_test} test)")
    if skipped:
        shown = ", ".join(skipped[:8]) + (" ..." if len(skipped) > 8 else "")
        CONSOLE.print(f"[yellow]Skipped {len(skipped)} frame(s) with invalid (NaN/inf) poses: {shown}")
    for note in notes:
        CONSOLE.print(f"[yellow]{note}")


class SceneImport:
    """What every importer does around reading its own layout::

        with SceneImport(dst, opts, intr) as scene:   # refuses a non-empty destination unless --overwrite
            for key, c2w in scene.frames(keys, pose):  # the frames with a valid pose
                scene.add(frame, key)
            scene.finish(...)                          # split + transforms.json
        scene.report(notes)                            # the scene is in place

    Files go to a temporary sibling of the destination that replaces it only when the block completes; on any error
    it is removed and the destination is left as it was. Frame cameras (and :meth:`add_depth`) grow the scene box.
    """

    def __init__(self, dst: Path, opts: ImportOptions, intr: PinholeIntrinsics) -> None:
        self.output = Path(dst).expanduser().absolute()
        self.opts, self.intr = opts, intr
        self.box = SceneBoxEstimator(max_depth=opts.max_depth)
        self.kept: List[Any] = []
        self.skipped: List[str] = []
        self.split: Tuple[List[str], List[str]] = ([], [])
        self._atomic = atomic_output_dir(self.output, opts.overwrite)
        self._writer: Optional[SceneWriter] = None

    def __enter__(self) -> "SceneImport":
        self._writer = SceneWriter(self._atomic.__enter__())
        return self

    @property
    def writer(self) -> SceneWriter:
        """The writer into the temporary folder (inside the ``with`` block only)."""
        if self._writer is None:
            raise RuntimeError("SceneImport writes only inside its with block")
        return self._writer

    def __exit__(self, exc_type, exc, tb) -> Optional[bool]:
        return self._atomic.__exit__(exc_type, exc, tb)

    def frames(self, keys: Sequence[Any], pose: Callable[[Any], Optional[np.ndarray]],
               skipped_name: Callable[[Any], str] = str) -> Iterable[Tuple[Any, np.ndarray]]:
        """(key, OpenGL camera-to-world) of each frame with a valid ``pose(key)``, to loop over under a progress bar.
        All poses are read first (a bad one stops the import before any image is read); a frame whose pose is None
        (NaN/inf: ScanNet's lost tracking) is recorded as skipped, as ``skipped_name(key)``."""
        posed = []
        for key in keys:
            c2w = pose(key)
            if c2w is None:
                self.skipped.append(skipped_name(key))
            else:
                posed.append((key, c2w))
        return track(posed, description="Importing frames", console=CONSOLE)

    def add_depth(self, frame: Frame, depth_m: np.ndarray, size: Tuple[int, int]) -> None:
        """Grow the scene box by ``frame``'s depth (metres, seen by the scene camera) and write it at ``size``."""
        self.box.add_depth(depth_m, frame.c2w_gl, self.intr)
        frame.depth_m = resize_depth(depth_m, size)

    def add(self, frame: Frame, key: Any) -> None:
        """Write ``frame`` and record it as kept under ``key`` (its camera grows the scene box)."""
        self.box.add_camera(frame.c2w_gl, self.intr)
        self.writer.add(frame)
        self.kept.append(key)

    def check_kept(self, where: Path) -> None:
        if len(self.kept) < 2:
            raise PliftDataError(f"only {len(self.kept)} frame(s) with a valid pose", where)

    def interleaved_split(self, test_fraction: float = 0.25) -> Tuple[List[str], List[str]]:
        """(train, test) image paths of the kept frames: every n-th one is a test frame."""
        test_idx = set(interleaved_test_indices(len(self.kept), test_fraction))
        names = [e["file_path"] for e in self.writer.frames]
        return [n for j, n in enumerate(names) if j not in test_idx], [n for j, n in enumerate(names) if j in test_idx]

    def finish(self, source: str, src: Path, class_map: str, panoptic_classes: Union[str, Dict[str, Any]],
               split: Tuple[List[str], List[str]], split_source: str, has_depth: bool, **details: Any) -> None:
        """Write transforms.json; its ``import`` block records the source, the options and ``details``."""
        provenance: Dict[str, Any] = {
            "source": source, "src": str(Path(src).absolute()), "downscale": self.opts.downscale, "class_map": class_map,
            **details, "frame_step": self.opts.frame_step, "split": split_source, "scene_box_from": self.box.source,
            "skipped_frames": self.skipped, "pixel_center_shift": PIXEL_CENTER_SHIFT,
        }
        self.split = split
        meta = transforms_meta(self.intr, panoptic_classes, split[0], split[1], self.box.box(), has_depth, provenance)
        self.writer.write_transforms(meta)

    def report(self, notes: Sequence[str]) -> Path:
        """Print the summary; returns the written scene folder."""
        report(self.output, len(self.kept), len(self.split[0]), len(self.split[1]), self.skipped, notes)
        return self.output
