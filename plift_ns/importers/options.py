"""Command-line options every importer shares (``plift-import <layout> SRC DST``) and the ``--classes`` class set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Literal, Tuple, Union

from plift_ns.data.classes import BUILTIN_CLASS_SETS, ClassSet, load_class_set

LabelsFrom = Literal["none", "gt-with-noise"]
"""``--labels-from``: where the input labels of a layout whose labels are ground truth come from."""


@dataclass
class ImportOptions:
    """Options shared by every importer (``src`` and ``dst`` are positional on the command line)."""

    downscale: int = 1
    """Integer downscale factor of the written images (area resampling; labels nearest; intrinsics scaled)."""
    classes: str = "scannet21"
    """Class set of the written scene: scannet21, scannet31 or a class-set JSON path."""
    overwrite: bool = False
    """Replace a non-empty destination folder."""
    frame_step: int = 1
    """Keep every n-th frame of the source (before the train/test split)."""
    max_depth: float = 4.0
    """Without depth maps: the view frusta are cut at this depth (metres) for the scene box."""


@dataclass
class GroundTruthImportOptions(ImportOptions):
    """Options of the importers whose source labels are ground truth (written to ``gt_*`` only)."""

    labels_from: LabelsFrom = "none"
    """Input labels: none (run plift-labels afterwards) or gt-with-noise (simulated from GT; a testing aid)."""
    test_fraction: float = 0.25
    """Share of evenly interleaved test frames (paper: 25%)."""
    seed: int = 0
    """Seed of the simulated labels (gt-with-noise)."""


def class_set_spec(classes: str) -> Tuple[ClassSet, Union[str, Dict[str, Any]]]:
    """The class set for ``--classes`` and what to write as ``panoptic_classes`` (a built-in name, else inline)."""
    class_set = load_class_set(classes, Path.cwd())
    return class_set, (classes if classes in BUILTIN_CLASS_SETS else class_set.to_json())
