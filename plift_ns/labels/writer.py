"""Writing a scene's label files in the data contract: per frame ``semantics/<stem>.png`` (uint8, void = the class
set's void id), ``instance/<stem>.png`` (uint16) and ``probabilities/<stem>.npz`` (float16 ``probability`` (H, W, C),
``confidence`` (H, W)), then the frame entries and ``panoptic_classes`` of ``transforms.json``.

Everything is written atomically (temporary file + ``os.replace``), so an interrupted run never leaves half a file.
Progress lives in ``plift_labels.json`` beside ``transforms.json`` (the settings that shape the labels + the frames
done); a frame is *done* when it is recorded there and its three files exist, so a rerun with the same settings skips
it. ``transforms.json`` is rewritten only once every frame is done (the original is kept as ``transforms.json.bak``).
"""

from __future__ import annotations

import io
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np

from plift_ns.data.classes import ClassSet
from plift_ns.errors import PliftDataError
from plift_ns.io.atomic import atomic_write_bytes, atomic_write_json
from plift_ns.io.images import read_rgb
from plift_ns.labels.coco_export import export_coco_panoptic
from plift_ns.labels.files import FrameFiles, png_bytes
from plift_ns.labels.fusion import FusedLabels

LABEL_DIRS = ("semantics", "instance", "probabilities")
STATE_FILE = "plift_labels.json"

ProgressFn = Callable[[int, int, str, bool], None]
"""``progress(index, total, stem, skipped)`` after each frame."""


@dataclass
class RunReport:
    """What a run did."""

    total: int = 0
    written: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    seconds: List[float] = field(default_factory=list)
    coco_json: Optional[Path] = None

    @property
    def seconds_per_frame(self) -> float:
        return float(np.mean(self.seconds)) if self.seconds else 0.0


def read_transforms(scene: Path) -> tuple:
    """(path, parsed JSON) of a scene's transforms.json (``scene`` may be the folder or the file)."""
    scene = Path(scene)
    path = scene if scene.suffix == ".json" else scene / "transforms.json"
    if not path.exists():
        raise PliftDataError("transforms.json not found (is --data a nerfstudio scene folder?)", path)
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PliftDataError(f"not valid JSON ({err})", path) from None
    if not isinstance(meta, dict) or not meta.get("frames"):
        raise PliftDataError("no frames: 'frames' is missing or empty", path)
    return path, meta


def frame_files(transforms_path: Path, meta: Dict[str, Any]) -> List[FrameFiles]:
    """Label paths of every frame; stems are the image file names without extension (the relative image path
    joined with '__' when two images share a name)."""
    base = transforms_path.parent
    rels = []
    for i, frame in enumerate(meta["frames"]):
        if not isinstance(frame, dict) or "file_path" not in frame:
            raise PliftDataError(f"frame {i} has no 'file_path'", transforms_path)
        rels.append(Path(str(frame["file_path"])))
    stems = [r.stem for r in rels]
    if len(set(stems)) != len(stems):
        stems = ["__".join(r.with_suffix("").parts).replace("..", "up") for r in rels]
    out = []
    for i, (rel, stem) in enumerate(zip(rels, stems)):
        relative = {
            "semantics_path": f"semantics/{stem}.png",
            "instance_path": f"instance/{stem}.png",
            "probabilities_path": f"probabilities/{stem}.npz",
        }
        image = rel if rel.is_absolute() else base / rel
        out.append(FrameFiles(i, stem, image, relative, {k: base / v for k, v in relative.items()}))
    return out


def write_frame_labels(files: FrameFiles, fused: FusedLabels, class_set: ClassSet) -> None:
    """Write one frame's three label files atomically (each to a temporary file, then all renamed)."""
    sem = fused.semantics.cpu().numpy()
    sem = np.where(sem < 0, class_set.void_id, sem)
    sem_dtype = np.uint8 if max(class_set.void_id, class_set.num_classes - 1) < 256 else np.uint16
    inst = fused.instance.cpu().numpy()
    if inst.max(initial=0) >= 65536:
        raise PliftDataError(f"{inst.max()} instances do not fit a uint16 PNG", files.absolute["instance_path"])
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        probability=fused.probability.cpu().numpy().astype(np.float16),
        confidence=fused.confidence.cpu().numpy().astype(np.float16),
    )
    payloads = {
        "semantics_path": png_bytes(sem.astype(sem_dtype)),
        "instance_path": png_bytes(inst.astype(np.uint16)),
        "probabilities_path": buffer.getvalue(),
    }
    for key, data in payloads.items():
        atomic_write_bytes(files.absolute[key], data)


def class_spec(class_set: ClassSet, spec: str) -> Union[str, Dict[str, Any]]:
    """What ``panoptic_classes`` gets: the built-in name, or the class set inlined."""
    from plift_ns.data.classes import BUILTIN_CLASS_SETS

    return spec if spec in BUILTIN_CLASS_SETS else class_set.to_json()


def update_transforms(
    path: Path, meta: Dict[str, Any], frames: List[FrameFiles], classes: Union[str, Dict[str, Any]],
    settings: Dict[str, Any],
) -> None:
    """Point every frame at its label files and set ``panoptic_classes``; keep ``transforms.json.bak`` of the original
    (once) and write atomically. ``gt_*`` keys are left alone."""
    backup = path.with_name(path.name + ".bak")
    if not backup.exists():
        shutil.copy2(path, backup)
    for files in frames:
        meta["frames"][files.index].update(files.relative)
    meta["panoptic_classes"] = classes
    meta["plift_labels"] = settings
    atomic_write_json(path, meta)


class SceneState:
    """``plift_labels.json``: the settings the labels are made with and the frames done."""

    def __init__(self, path: Path, settings: Dict[str, Any], done: Optional[Dict[str, bool]] = None) -> None:
        self.path, self.settings, self.done = path, settings, dict(done or {})

    @classmethod
    def read(cls, path: Path) -> Optional["SceneState"]:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(path, dict(data["settings"]), {str(k): bool(v) for k, v in data["done"].items()})
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            return None

    def mark(self, stem: str) -> None:
        self.done[stem] = True
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, {"settings": self.settings, "done": self.done})


def _settings_diff(old: Dict[str, Any], new: Dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def check_scene(scene: Path, settings: Dict[str, Any], overwrite: bool) -> tuple:
    """Checks that need no model: (transforms path, meta, frames); raises on missing images and on label files that
    would be replaced without ``overwrite``."""
    transforms_path, meta = read_transforms(scene)
    frames = frame_files(transforms_path, meta)
    missing = [f.image for f in frames if not f.image.exists()]
    if missing:
        raise PliftDataError(f"image file not found ({len(missing)} of {len(frames)} frames)", missing[0])
    prepare_state(transforms_path, frames, settings, overwrite, dry_run=True)
    return transforms_path, meta, frames


def prepare_state(
    transforms_path: Path, frames: List[FrameFiles], settings: Dict[str, Any], overwrite: bool, dry_run: bool = False
) -> SceneState:
    """The run's state: resumed when the recorded settings match; refuses to replace label files it did not write
    (or wrote with other settings) unless ``overwrite``. ``dry_run`` only checks."""
    state_path = transforms_path.parent / STATE_FILE
    old = SceneState.read(state_path)
    if old is not None and old.settings == settings and not overwrite:
        return old
    if not overwrite:
        existing = [p for f in frames for p in f.existing()]
        if existing:
            why = (
                f"were made with other settings ({_settings_diff(old.settings, settings)})"
                if old is not None
                else "were not written by plift-labels"
            )
            raise PliftDataError(
                f"{len(existing)} label files (e.g. {existing[0].relative_to(transforms_path.parent)}) {why}; "
                "pass --overwrite to replace them",
                transforms_path.parent,
            )
    state = SceneState(state_path, settings)
    if not dry_run:
        state.save()
    return state


def label_scene(
    scene: Path,
    label_fn: Callable[[np.ndarray], FusedLabels],
    class_set: ClassSet,
    classes: Union[str, Dict[str, Any]],
    settings: Dict[str, Any],
    overwrite: bool = False,
    export_coco_dir: Optional[Path] = None,
    progress: Optional[ProgressFn] = None,
) -> RunReport:
    """Label every frame of ``scene`` with ``label_fn`` (an RGB image → :class:`FusedLabels`), skipping done frames,
    then update transforms.json (and export COCO panoptic when asked)."""
    transforms_path, meta, frames = check_scene(scene, settings, overwrite)
    state = prepare_state(transforms_path, frames, settings, overwrite)
    report = RunReport(total=len(frames))
    for files in frames:
        if state.done.get(files.stem) and files.done():
            report.skipped.append(files.stem)
        else:
            start = time.perf_counter()
            image = read_rgb(files.image)
            fused = label_fn(image)
            write_frame_labels(files, fused, class_set)
            state.mark(files.stem)
            report.seconds.append(time.perf_counter() - start)
            report.written.append(files.stem)
        if progress is not None:
            progress(files.index + 1, len(frames), files.stem, files.stem in report.skipped)
    update_transforms(transforms_path, meta, frames, classes, settings)
    if export_coco_dir is not None:
        report.coco_json = export_coco_panoptic(export_coco_dir, frames, class_set)
    return report
