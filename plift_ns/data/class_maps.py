"""Class maps: how a source label space (a segmenter's classes, a dataset's label ids) folds into a class set.

One module and one JSON schema serve both users: ``plift-labels`` folds a segmenter's class probabilities
(:meth:`ClassMap.fold_matrix`, :func:`fold_probabilities`) and ``plift-import`` maps label images and probability
channels of public datasets (:meth:`ClassMap.lut`). A class map is a built-in name (``configs/class_maps/<name>.json``)
or a JSON path::

    {"name": "nyu40_to_scannet21",                    (optional; default: the file name)
     "keys": "id",                                    (optional: "id" (default) or "name", see below)
     "map": [["unannotated", "void"], ["wall", "wall"], ..., ["pillow", ["pillow", "otherprop"]], ...],
     "default": null,                                 (optional, "name" maps: target of classes not listed)
     "class_ids": {"0": "void", "1": "backpack", ...}}  (optional, "name" maps: fallback source id -> name table)

``map`` lists ``[source class, target]`` pairs. Other keys (``source``, ``target(s)``, ``description``) document the
map and are not read. A target is

* a class name of the chosen class set;
* a list of candidate names: the first one in the chosen class set wins (one file serves ScanNet-21 and ScanNet-31);
* ``"void"``: the source class is void (label pixels become void; probability mass counts as "no object");
* ``null``: not mapped. Its probability mass counts as "no object" like void, and a label pixel with it is an error.

``keys``: ``"id"`` — row ``i`` is source id ``i`` (the segmenter's ``id2label`` order, a label image's value); a
segmenter whose class names are the same set as the map's is matched by name instead of position. ``"name"`` — rows
are matched by source class name through the source's id -> name table (e.g. Replica's ``info_semantic.json``, else
``class_ids``); names the map does not list go to ``default`` (null: an error), the name ``"void"`` is void.

The older schema (``map`` a dict keyed by id or name, with ``num_source_ids`` and ``source_names``) is still read, with
a deprecation warning (:class:`FutureWarning`), for user files written for ``plift-import --class-map``.

Folding segmenter probabilities: mapped columns are summed; the "no object" column plus the mass of void/unmapped
classes form one extra *void* column, so a folded distribution has C_tgt + 1 entries and still sums to 1. Fusion
drops candidate segments whose most likely folded class is void (like Mask2Former drops "no object" queries) and
renormalises the remaining per-pixel distribution over the mapped target classes.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from plift_ns.data.classes import ClassSet, configs_dir
from plift_ns.errors import PliftDataError

if TYPE_CHECKING:
    from torch import Tensor

logger = logging.getLogger(__name__)

Target = Union[None, str, List[str]]
"""A class name, candidate names (first one in the class set wins), ``"void"``, or None (not mapped)."""
SCHEMA = "class map must be {'map': [[source class, target class or null], ...]}"


def class_maps_dir() -> Path:
    return configs_dir() / "class_maps"


def builtin_class_maps() -> List[str]:
    """Names of the class maps shipped in ``configs/class_maps``."""
    return sorted(p.stem for p in class_maps_dir().glob("*.json"))


def class_map_path(name_or_path: Union[str, Path]) -> Path:
    """Resolve a built-in map name (``coco_panoptic_to_scannet21``) or a JSON path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        builtin = class_maps_dir() / f"{name_or_path}.json"
        if builtin.is_file():
            return builtin
    if not path.is_file():
        raise PliftDataError(f"class map not found (built-in maps: {', '.join(builtin_class_maps())})", path)
    return path


def _target(value: Any) -> Target:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


def _check_targets(targets: Iterable[Target], class_set: ClassSet, path: Path) -> None:
    """Every non-null target must be void or have a candidate in ``class_set``."""
    known = set(class_set.names) | {"void"}
    unknown = {str(t) for t in targets if t is not None and not known.intersection([t] if isinstance(t, str) else t)}
    if unknown:
        raise PliftDataError(
            f"class map targets {sorted(unknown)} are not classes of the class set '{class_set.name}' "
            f"({', '.join(class_set.names)})",
            path,
        )


def _resolve(target: Target, class_set: ClassSet) -> int:
    """Class-set id of a (checked) target: ``class_set.void_id`` for void, -1 for None."""
    if target is None:
        return -1
    for name in [target] if isinstance(target, str) else target:
        if name == "void":
            return class_set.void_id
        if name in class_set.names:
            return class_set.index(name)
    raise AssertionError(f"unchecked class map target {target!r}")


@dataclass
class LabelLUT:
    """A lookup table from source label ids to class-set ids (void id for void; -1 for ids the map does not know)."""

    table: np.ndarray
    class_set: ClassSet
    map_name: str
    source_ids: List[int] = field(default_factory=list)
    """Source ids the map knows, in order (the channel order of source probabilities)."""

    def apply(self, labels: np.ndarray, path: Path) -> np.ndarray:
        """Map a source label image; an id the map does not know is an error naming the file."""
        labels = np.asarray(labels, dtype=np.int64)
        bad = (labels < 0) | (labels >= len(self.table))
        out = np.full(labels.shape, -1, dtype=np.int64)
        out[~bad] = self.table[labels[~bad]]
        unknown = out < 0
        if unknown.any():
            value = int(labels[unknown][0])
            raise PliftDataError(f"label id {value} is not in the class map '{self.map_name}' (unknown label)", path)
        return out

    def map_probabilities(self, prob: np.ndarray, path: Path) -> Tuple[np.ndarray, np.ndarray]:
        """Sum source class channels into the class set's classes (void channels dropped); rows renormalised.

        Returns the (H, W, C) probabilities and the kept (non-void) mass per pixel. Source channel ``c`` is source id ``c``.
        """
        c_src = prob.shape[-1]
        expected = len(self.table)
        if c_src != expected:
            raise PliftDataError(
                f"probabilities have {c_src} class channels but the class map '{self.map_name}' has {expected} source "
                "classes (pass the class map the labels were made with: --class-map)", path)
        n = self.class_set.num_classes
        onto = np.zeros((c_src, n), dtype=np.float32)
        for s in range(c_src):
            t = int(self.table[s])
            if 0 <= t < n:
                onto[s, t] = 1.0
        out = prob.astype(np.float32) @ onto
        mass = out.sum(-1)
        out = np.where(mass[..., None] > 1e-6, out / np.maximum(mass[..., None], 1e-6), 1.0 / n)
        return out, mass


@dataclass
class ClassMap:
    """A class map file (see the module docstring): ``pairs`` of (source class, target) in source-id order."""

    name: str
    path: Path
    pairs: List[Tuple[str, Target]]
    keys: str = "id"
    default: Target = None
    class_ids: Dict[int, str] = field(default_factory=dict)

    @property
    def sources(self) -> List[str]:
        return [s for s, _ in self.pairs]

    @property
    def targets(self) -> List[Target]:
        return [t for _, t in self.pairs]

    @classmethod
    def load(cls, name_or_path: Union[str, Path]) -> "ClassMap":
        """Read a built-in map name or a JSON path (the older dict schema with a deprecation warning)."""
        path = class_map_path(name_or_path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise PliftDataError(f"class map is not valid JSON ({err})", path) from None
        if isinstance(data, dict) and isinstance(data.get("map"), dict):
            return cls._from_dict_schema(data, path)
        try:
            pairs = [(str(p[0]), _target(p[1])) for p in data["map"]]
            keys = str(data.get("keys", "id"))
            class_ids = {int(k): str(v) for k, v in data.get("class_ids", {}).items()}
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            raise PliftDataError(SCHEMA, path) from None
        return cls._checked(data, path, pairs, keys, class_ids)

    @classmethod
    def _checked(cls, data: Dict[str, Any], path: Path, pairs: List[Tuple[str, Target]], keys: str,
                 class_ids: Dict[int, str]) -> "ClassMap":
        if keys not in ("id", "name"):
            raise PliftDataError(f"'keys' must be 'id' or 'name', got {keys!r}", path)
        return cls(str(data.get("name", path.stem)), path, pairs, keys, _target(data.get("default")), class_ids)

    @classmethod
    def _from_dict_schema(cls, data: Dict[str, Any], path: Path) -> "ClassMap":
        """The older schema: ``map`` {source id or name: target}, ``num_source_ids`` and ``source_names`` for ids."""
        warnings.warn(
            f"{path}: class maps with 'map' as a dict are deprecated; write 'map' as [[source class, target], ...] in "
            "source-id order (with \"keys\": \"name\" for maps keyed by class name), as in configs/class_maps/",
            FutureWarning,
            stacklevel=3,
        )
        try:
            keys = str(data.get("keys", "id"))
            entries = {str(k): _target(v) for k, v in data["map"].items()}
            class_ids = {int(k): str(v) for k, v in data.get("class_ids", {}).items()}
            if keys != "id":
                return cls._checked(data, path, list(entries.items()), keys, class_ids)
            ids = {int(k): k for k in entries}
            size = max(max(ids, default=-1) + 1, int(data.get("num_source_ids") or 0))
            names = {str(k): str(v) for k, v in data.get("source_names", {}).items()}
            default = _target(data.get("default"))
            pairs = [(names.get(str(i), str(i)), entries[ids[i]] if i in ids else default) for i in range(size)]
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise PliftDataError(f"not a valid class map ({err!r})", path) from None
        return cls._checked(data, path, pairs, keys, class_ids)

    def lut(self, class_set: ClassSet, id_to_name: Optional[Dict[int, str]] = None) -> LabelLUT:
        """The lookup table for label images; ``"name"`` maps need ``id_to_name`` (or use their ``class_ids``)."""
        if self.keys == "id":
            targets = self.targets
            ids = list(range(len(targets)))
        else:
            names = id_to_name if id_to_name is not None else self.class_ids
            if not names:
                raise PliftDataError("this class map is keyed by class name and needs an id -> name table", self.path)
            by_name = dict(self.pairs)
            ids = sorted(names)
            targets = ["void" if names[i] == "void" else by_name.get(names[i], self.default) for i in ids]
        _check_targets(targets, class_set, self.path)
        table = np.full(max(ids, default=-1) + 1, -1, dtype=np.int64)
        for i, target in zip(ids, targets):
            table[i] = _resolve(target, class_set)
        return LabelLUT(table, class_set, self.name, ids)

    def fold_matrix(self, source_names: Sequence[str], target: ClassSet) -> np.ndarray:
        """The (C_src, C_tgt) 0/1 matrix folding a segmenter with classes ``source_names`` into ``target``.

        Source classes are matched by name when the map and the segmenter have the same set of names, otherwise by
        position (with a warning). A different number of classes is an error naming both counts and the file.
        """
        sources, targets, path = self.sources, self.targets, self.path
        if len(sources) != len(source_names):
            raise PliftDataError(
                f"class map has {len(sources)} source classes but the segmenter predicts {len(source_names)} classes "
                f"(its id2label); use a class map written for this model (--class-map)",
                path,
            )
        _check_targets(targets, target, path)
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
            col = _resolve(targets[idx], target)
            if 0 <= col < target.num_classes:
                matrix[row, col] = 1.0
        return matrix


def read_class_map(name_or_path: Union[str, Path]) -> tuple:
    """(source names, targets, path) of a class map."""
    class_map = ClassMap.load(name_or_path)
    return class_map.sources, class_map.targets, class_map.path


def load_class_map(name_or_path: Union[str, Path], source_names: Sequence[str], target: ClassSet) -> np.ndarray:
    """:meth:`ClassMap.fold_matrix` of a built-in map name or a JSON path."""
    return ClassMap.load(name_or_path).fold_matrix(source_names, target)


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
    import torch

    mat = torch.as_tensor(matrix, dtype=class_probs.dtype, device=class_probs.device)
    if class_probs.shape[-1] != mat.shape[0] + 1:
        raise PliftDataError(
            f"segmenter outputs {class_probs.shape[-1] - 1} classes (+ no object) but the class map has {mat.shape[0]}"
        )
    mapped = class_probs[:, :-1] @ mat
    void = (class_probs.sum(dim=-1) - mapped.sum(dim=-1)).clamp_min(0.0)
    return torch.cat([mapped, void[:, None]], dim=-1)
