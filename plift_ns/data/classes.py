"""Panoptic class sets: ordered class names, thing/stuff flags, colours and the void id.

A class set is stored as JSON::

    {"name": "scannet21", "void_id": 255,
     "classes": [{"name": "wall", "isthing": false, "color": [174, 199, 232]}, ...]}

It can be inlined in ``transforms.json`` under ``panoptic_classes``, or referenced there by the name of a built-in
set (``"scannet21"``, ``"scannet31"``) or by a path relative to the scene.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from plift_ns.errors import PliftDataError

BUILTIN_CLASS_SETS = ("scannet21", "scannet31")


@dataclass(frozen=True)
class ClassSet:
    """An ordered set of panoptic classes."""

    names: Tuple[str, ...]
    isthing: Tuple[bool, ...]
    colors: Tuple[Tuple[int, int, int], ...]
    void_id: int = 255
    name: str = "custom"

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0:
            raise PliftDataError("class set is empty")
        if len(self.isthing) != n or len(self.colors) != n:
            raise PliftDataError(
                f"class set '{self.name}': {n} names but {len(self.isthing)} isthing flags and {len(self.colors)} colours"
            )
        if len(set(self.names)) != n:
            raise PliftDataError(f"class set '{self.name}': duplicate class names")
        if 0 <= self.void_id < n:
            raise PliftDataError(f"class set '{self.name}': void id {self.void_id} collides with class {self.void_id}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def thing_ids(self) -> List[int]:
        return [i for i, t in enumerate(self.isthing) if t]

    @property
    def stuff_ids(self) -> List[int]:
        return [i for i, t in enumerate(self.isthing) if not t]

    def thing_mask(self) -> np.ndarray:
        """Boolean array (C,) that is True for thing classes."""
        return np.asarray(self.isthing, dtype=bool)

    def color_table(self) -> np.ndarray:
        """Float colours (C + 1, 3) in [0, 1]; the last row is the void colour (black)."""
        table = np.zeros((self.num_classes + 1, 3), dtype=np.float32)
        table[:-1] = np.asarray(self.colors, dtype=np.float32) / 255.0
        return table

    def index(self, name: str) -> int:
        return self.names.index(name)

    def to_json(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "void_id": self.void_id,
            "classes": [
                {"name": n, "isthing": bool(t), "color": list(c)} for n, t, c in zip(self.names, self.isthing, self.colors)
            ],
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any], source: Optional[Union[str, Path]] = None) -> "ClassSet":
        try:
            classes = data["classes"]
            names = tuple(str(c["name"]) for c in classes)
            isthing = tuple(bool(c["isthing"]) for c in classes)
            colors = tuple(tuple(int(v) for v in c.get("color", _default_color(i))) for i, c in enumerate(classes))
        except (KeyError, TypeError) as err:
            raise PliftDataError(
                f"class set must be {{'classes': [{{'name', 'isthing', 'color'}}...], 'void_id'}}: missing {err}", source
            ) from None
        if any(len(c) != 3 for c in colors):
            raise PliftDataError("every class colour must be [r, g, b]", source)
        return cls(names, isthing, colors, int(data.get("void_id", 255)), str(data.get("name", "custom")))  # type: ignore[arg-type]


def _default_color(i: int) -> Sequence[int]:
    rng = np.random.default_rng(1000 + i)
    return [int(v) for v in rng.integers(40, 256, size=3)]


def configs_dir() -> Path:
    """The project's ``configs/`` folder: beside the package in a checkout, packaged as ``plift_ns._configs`` in a wheel."""
    source = Path(__file__).resolve().parents[2] / "configs"
    if source.is_dir():
        return source
    return Path(str(resources.files("plift_ns._configs")))


def builtin_class_set_path(name: str) -> Path:
    """Path of a built-in class set JSON shipped in ``configs/class_sets``."""
    path = configs_dir() / "class_sets" / f"{name}.json"
    if not path.exists():
        raise PliftDataError(f"unknown class set '{name}' (built-in sets: {', '.join(BUILTIN_CLASS_SETS)})")
    return path


def load_class_set(spec: Union[str, Path, Dict[str, Any]], base_dir: Optional[Path] = None) -> ClassSet:
    """Load a class set from an inline dict, a built-in name, or a JSON path (relative to ``base_dir``)."""
    if isinstance(spec, dict):
        return ClassSet.from_json(spec, base_dir / "transforms.json" if base_dir else None)
    spec_str = str(spec)
    if spec_str in BUILTIN_CLASS_SETS:
        path = builtin_class_set_path(spec_str)
    else:
        path = Path(spec_str)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.exists():
            raise PliftDataError(
                f"class set file not found (built-in sets: {', '.join(BUILTIN_CLASS_SETS)})", path
            )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PliftDataError(f"not valid JSON ({err})", path) from None
    return ClassSet.from_json(data, path)
