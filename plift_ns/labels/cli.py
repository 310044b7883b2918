"""``plift-labels``: 2D panoptic labels with test-time-augmented confidences for a nerfstudio scene (Sec. 3.1, supp. A).

Example::

    plift-labels --data scene/                                   # the paper's Mask2Former (Swin-L, COCO panoptic), TTA
    plift-labels --data scene/ --classes scannet31 --no-tta      # in-the-wild classes, one pass per image
    plift-labels --data scene/ --model ./my_checkpoint --class-map my_map.json --export-coco scene/coco

For every frame of transforms.json it writes ``semantics/``, ``instance/`` and ``probabilities/`` files, then points
the frames at them and sets ``panoptic_classes``. Reruns skip finished frames.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import tyro
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from plift_ns.errors import PliftDataError, data_error_status
from plift_ns.labels.fusion import FusionConfig
from plift_ns.labels.tta import DEFAULT_TTA

DEFAULT_MODEL = "facebook/mask2former-swin-large-coco-panoptic"
"""The paper's segmenter: Mask2Former, Swin-L backbone, trained on COCO panoptic (133 classes)."""


@dataclass
class LabelsArgs:
    """Make 2D panoptic labels (class, instance, TTA class distribution + confidence) for every frame of a scene."""

    data: Path
    """Scene folder holding transforms.json (e.g. made by ns-process-data)."""
    model: str = DEFAULT_MODEL
    """Hub id or local folder of a transformers Mask2Former/MaskFormer/OneFormer/EoMT checkpoint (detectron2: weights)."""
    classes: str = "scannet21"
    """Target class set: scannet21, scannet31 (in-the-wild) or a class-set JSON path."""
    class_map: Optional[str] = None
    """Model classes → class set: built-in name (coco_panoptic_to_scannet21/31), JSON path or 'identity' (default: auto)."""
    tta: Tuple[str, ...] = DEFAULT_TTA
    """Test-time augmentations besides the original image (see plift_ns.labels.tta; combine with '+')."""
    no_tta: bool = False
    """Only the original image (no test-time augmentation)."""
    backend: Literal["transformers", "detectron2"] = "transformers"
    """Segmenter backend; detectron2 is optional and not installed by plift-ns."""
    detectron2_config: Optional[Path] = None
    """detectron2 backend: the Mask2Former YAML config (--model is then the weights file)."""
    device: Optional[str] = None
    """Torch device (default: cuda if available, else cpu)."""
    batch_size: int = 2
    """Images per forward pass."""
    max_side: int = 640
    """Fuse masks at most at this longer side (the model still sees the full image); 0: native size."""
    theta: float = 0.5
    """Soft-IoU threshold of the clustering graph."""
    void_threshold: float = 0.1
    """Pixels whose best (max class prob x soft mask) is below this are void with confidence 0."""
    min_score: float = 0.0
    """Drop candidate segments whose best class probability is below this."""
    local_files_only: bool = False
    """Never download (also implied by HF_HUB_OFFLINE=1)."""
    overwrite: bool = False
    """Recompute every frame and replace existing label files (e.g. the synthetic scene's own labels)."""
    export_coco: Optional[Path] = None
    """Also write COCO panoptic PNGs + JSON to this folder."""

    def augmentation_names(self) -> List[str]:
        return [] if self.no_tta else list(self.tta)

    def settings(self) -> Dict[str, Any]:
        """What shapes the labels (a rerun with other values recomputes every frame)."""
        return {
            "model": self.model,
            "backend": self.backend,
            "classes": self.classes,
            "class_map": self.class_map or "auto",
            "tta": ["original", *self.augmentation_names()],
            "fusion": asdict(self.fusion()),
            "max_side": self.max_side,
        }

    def fusion(self) -> FusionConfig:
        return FusionConfig(theta=self.theta, void_threshold=self.void_threshold, min_score=self.min_score)


def build_segmenter(args: LabelsArgs):
    """The query segmenter chosen by ``args``."""
    if args.backend == "detectron2":
        from plift_ns.labels.detectron2_backend import load_detectron2_segmenter

        if args.detectron2_config is None:
            raise PliftDataError("the detectron2 backend needs --detectron2-config (and --model = the weights file)")
        return load_detectron2_segmenter(args.detectron2_config, Path(args.model), args.device)
    from plift_ns.labels.hf_backend import HFQuerySegmenter

    return HFQuerySegmenter(args.model, args.device, args.batch_size, args.local_files_only)


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def run(args: LabelsArgs, console: Optional[Console] = None):
    """Label the scene of ``args``; returns the :class:`~plift_ns.labels.writer.RunReport`."""
    from plift_ns.data.class_maps import resolve_class_map
    from plift_ns.data.classes import load_class_set
    from plift_ns.labels.labeler import Labeler
    from plift_ns.labels.tta import build_augmentations
    from plift_ns.labels.writer import check_scene, class_spec, label_scene

    console = console or Console()
    transforms_path, _, _ = check_scene(args.data, args.settings(), args.overwrite)  # fail before loading a model
    class_set = load_class_set(args.classes, transforms_path.parent)
    augmentations = build_augmentations(args.augmentation_names())
    with console.status(f"loading {args.model}"):
        _quiet_transformers()
        segmenter = build_segmenter(args)
    matrix = resolve_class_map(args.class_map, segmenter.class_names, class_set)
    labeler = Labeler(segmenter, class_set, matrix, augmentations, args.fusion(), args.max_side, args.batch_size)
    console.print(
        f"{args.model} on {segmenter.device}: {len(segmenter.class_names)} classes → {class_set.name} "
        f"({class_set.num_classes}); {len(augmentations)} pass(es) per image: {', '.join(a.name for a in augmentations)}"
    )
    with Progress(TextColumn("[bold]labelling[/] {task.fields[stem]}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("labels", total=None, stem="")

        def progress(done: int, total: int, stem: str, skipped: bool) -> None:
            bar.update(task, completed=done, total=total, stem=stem + (" (done before)" if skipped else ""))

        report = label_scene(
            transforms_path.parent, labeler.label, class_set, class_spec(class_set, args.classes), args.settings(),
            overwrite=args.overwrite, export_coco_dir=args.export_coco, progress=progress,
        )
    return report


def main(argv: Optional[List[str]] = None) -> int:
    """``plift-labels``; returns the exit status (2: bad input, one message)."""
    args = tyro.cli(LabelsArgs, args=argv, prog="plift-labels")
    console = Console()
    start = time.perf_counter()

    def label() -> None:
        report = run(args, console)
        console.print(
            f"[bold green]labelled[/] {args.data}: {len(report.written)} frames written, {len(report.skipped)} already "
            f"done ({report.seconds_per_frame:.2f} s/frame, {time.perf_counter() - start:.1f} s total)"
        )
        if report.coco_json is not None:
            console.print(f"COCO panoptic export: {report.coco_json}")

    return data_error_status("plift-labels", label, console)
