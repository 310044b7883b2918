"""Up-front scene check: every frame's image and label files decode and fit the data contract, before training.

The dataparser already checks what transforms.json says (keys, paths inside the scene, poses, splits, file sizes from
headers); this pass decodes every file once, so a truncated image or a class id outside the class set stops
``ns-train`` before it writes anything, with the file named, instead of minutes later while the frames load.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.utils.rich_utils import CONSOLE
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from plift_ns.data.classes import ClassSet
from plift_ns.data.label_io import read_label_png, read_semantics
from plift_ns.errors import PliftDataError


def decode_image(path: Path) -> Tuple[int, int]:
    """Decode an image completely; its (width, height). A file PIL cannot decode is a PliftDataError naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.size
    except (OSError, ValueError, SyntaxError) as err:
        raise PliftDataError(f"cannot decode image ({err}); re-export or remove this frame", path) from None


def npz_shapes(path: Path) -> Dict[str, Tuple[int, ...]]:
    """Shapes of the arrays in an .npz, read from their headers (nothing is decompressed beyond them)."""
    shapes: Dict[str, Tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                with archive.open(name) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shapes[name.removesuffix(".npy")] = tuple(read(f)[0])
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise PliftDataError(f"cannot read probabilities ({err})", path) from None
    return shapes


def check_frame(outputs: DataparserOutputs, index: int, class_set: ClassSet) -> None:
    """Decode frame ``index``'s image and label files; raise PliftDataError (naming the file) on the first problem."""
    meta = outputs.metadata

    def path(key: str):
        paths = meta.get(f"{key}_filenames")
        return None if paths is None else paths[index]

    width, height = decode_image(outputs.image_filenames[index])
    for key in ("semantics", "gt_semantics"):
        if path(key) is not None:
            read_semantics(path(key), class_set)
    for key in ("instance", "gt_instance"):
        if path(key) is not None:
            read_label_png(path(key))
    prob = path("probabilities")
    if prob is not None:
        shapes = npz_shapes(prob)
        if "probability" not in shapes or "confidence" not in shapes:
            raise PliftDataError(f"npz must hold 'probability' and 'confidence', has {sorted(shapes)}", prob)
        if shapes["probability"][-1:] != (class_set.num_classes,):
            raise PliftDataError(
                f"probability has shape {shapes['probability']}, but the class set has {class_set.num_classes} classes "
                "(expected H, W, C)",
                prob,
            )


def validate_splits(splits: Sequence[DataparserOutputs], description: str = "Checking the scene") -> None:
    """Decode every frame of the given dataparser outputs (each frame once), with a progress bar."""
    seen = set()
    work: List[Tuple[DataparserOutputs, int]] = []
    for outputs in splits:
        for i, name in enumerate(outputs.image_filenames):
            if name not in seen:
                seen.add(name)
                work.append((outputs, i))
    with Progress(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=CONSOLE,
        transient=True,
    ) as progress:
        for outputs, i in progress.track(work, total=len(work)):
            check_frame(outputs, i, outputs.metadata["class_set"])
