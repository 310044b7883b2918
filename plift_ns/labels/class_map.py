"""Class maps: fold a segmenter's classes (e.g. COCO-panoptic, 133) into the target class set (e.g. ScanNet-21).

A class map is JSON in ``configs/class_maps/`` (or any path)::

    {"name": "coco_panoptic_to_scannet21", "source": "coco_panoptic", "target": "scannet21",
     "map": [["person", "person"], ["bicycle", "otherprop"], ..., ["rug-merged", "floor"]]}

``map`` lists every source class in the order of the segmenter's ``id2label`` with its target class name, or
``null`` to leave it unmapped. Folding sums the probabilities of source classes that map to the same target.

Choice for the "no object" column and unmapped classes: their mass is summed into one extra *void* column, so a
folded distribution has C_tgt + 1 entries (the last is void) and still sums to 1. Fusion drops candidate segments
whose most likely folded class is void (like Mask2Former drops "no object" queries) and renormalises the remaining
per-pixel distribution over the mapped target classes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from plift_ns.data.classes import ClassSet, configs_dir
from plift_ns.errors import PliftDataError

logger = logging.getLogger(__name__)


def builtin_class_maps() -> List[str]:
    """Names of the class maps shipped in ``configs/class_maps``."""
    return sorted(p.stem for p in (configs_dir() / "class_maps").glob("*.json"))


def class_map_path(name_or_path: Union[str, Path]) -> Path:
    """Resolve a built-in map name (``coco_panoptic_to_scannet21``) or a JSON path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        builtin = configs_dir() / "class_maps" / f"{name_or_path}.json"
        if builtin.exists():
            return builtin
    if not path.exists():
        raise PliftDataError(f"class map not found (built-in maps: {', '.join(builtin_class_maps())})", path)
    return path


def read_class_map(name_or_path: Union[str, Path]) -> tuple:
    """(source names, target names or None, path) of a class-map JSON."""
    path = class_map_path(name_or_path)
    try:
        data = json.loads(path.read_text())
        pairs = data["map"]
        sources = [str(p[0]) for p in pairs]
        targets = [None if p[1] is None else str(p[1]) for p in pairs]
    except json.JSONDecodeError as err:
        raise PliftDataError(f"class map is not valid JSON ({err})", path) from None
    except (KeyError, TypeError, IndexError):
        raise PliftDataError("class map must be {'map': [[source class, target class or null], ...]}", path) from None
    return sources, targets, path


def load_class_map(name_or_path: Union[str, Path], source_names: Sequence[str], target: ClassSet) -> np.ndarray:
    """The (C_src, C_tgt) 0/1 matrix of a class map for a segmenter with classes ``source_names``.

    Source classes are matched by name when the map and the segmenter have the same set of names, otherwise by
    position (with a warning). A different number of classes is an error naming both counts and the file.
    """
    sources, targets, path = read_class_map(name_or_path)
    if len(sources) != len(source_names):
        raise PliftDataError(
            f"class map has {len(sources)} source classes but the segmenter predicts {len(source_names)} classes "
            f"(its id2label); use a class map written for this model (--class-map)",
            path,
        )
    unknown = sorted({t for t in targets if t is not None and t not in target.names})
    if unknown:
        raise PliftDataError(
            f"class map targets {unknown} are not classes of the class set '{target.name}' ({', '.join(target.names)})",
            path,
        )
    if len(set(sources)) != len(sources):
        raise PliftDataError("class map lists a source class twice", path)
    if set(sources) == set(source_names):
        order = [sources.index(n) for n in source_names]
    else:
        differ = [(a, b) for a, b in zip(source_names, sources) if a != b]
        logger.warning(
            "%s: %d of %d class names differ from the segmenter's (e.g. %r vs %r); matching classes by position",
            path, len(differ), len(sources), differ[0][0], differ[0][1],
        )
        order = list(range(len(sources)))
    matrix = np.zeros((len(source_names), target.num_classes), dtype=np.float32)
    for row, idx in enumerate(order):
        if targets[idx] is not None:
            matrix[row, target.index(targets[idx])] = 1.0
    return matrix


def identity_class_map(source_names: Sequence[str], target: ClassSet) -> np.ndarray:
    """Map source classes to target classes of the same name (case-insensitive); others are unmapped."""
    lookup = {n.lower(): i for i, n in enumerate(target.names)}
    matrix = np.zeros((len(source_names), target.num_classes), dtype=np.float32)
    for row, name in enumerate(source_names):
        if name.lower() in lookup:
            matrix[row, lookup[name.lower()]] = 1.0
    if not matrix.any():
        raise PliftDataError(
            f"no class of the segmenter matches a class of '{target.name}' by name; give a class map (--class-map)"
        )
    return matrix


def default_class_map(source_names: Sequence[str], target: ClassSet) -> np.ndarray:
    """Identity when every target class is among the segmenter's classes, else the built-in COCO-panoptic map."""
    lower = {n.lower() for n in source_names}
    if all(n.lower() in lower for n in target.names):
        return identity_class_map(source_names, target)
    name = f"coco_panoptic_to_{target.name}"
    if name not in builtin_class_maps():
        raise PliftDataError(
            f"no built-in class map for class set '{target.name}' (built-in: {', '.join(builtin_class_maps())}); "
            "pass --class-map with a JSON map from the segmenter's classes to the class set"
        )
    return load_class_map(name, source_names, target)


def resolve_class_map(spec: Optional[Union[str, Path]], source_names: Sequence[str], target: ClassSet) -> np.ndarray:
    """``spec`` None/"auto" → :func:`default_class_map`, "identity" → :func:`identity_class_map`, else a map file."""
    if spec is None or str(spec) == "auto":
        return default_class_map(source_names, target)
    if str(spec) == "identity":
        return identity_class_map(source_names, target)
    return load_class_map(spec, source_names, target)


def fold_probabilities(class_probs: Tensor, matrix: Union[np.ndarray, Tensor]) -> Tensor:
    """Fold (Q, C_src + 1) probabilities into (Q, C_tgt + 1): mapped columns summed, last column = void.

    Void = the "no object" probability plus the mass of unmapped source classes, so each row still sums to 1.
    """
    mat = torch.as_tensor(matrix, dtype=class_probs.dtype, device=class_probs.device)
    if class_probs.shape[-1] != mat.shape[0] + 1:
        raise PliftDataError(
            f"segmenter outputs {class_probs.shape[-1] - 1} classes (+ no object) but the class map has {mat.shape[0]}"
        )
    mapped = class_probs[:, :-1] @ mat
    void = (class_probs.sum(dim=-1) - mapped.sum(dim=-1)).clamp_min(0.0)
    return torch.cat([mapped, void[:, None]], dim=-1)
