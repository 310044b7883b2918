"""Label-file primitives shared by the label writer and the COCO panoptic export: one frame's label paths
(:class:`FrameFiles`), PNG encoding and atomic writes (temporary sibling + ``os.replace``)."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from PIL import Image


@dataclass
class FrameFiles:
    """Paths of one frame: its image and its three label files (absolute) plus the relative ones for transforms.json."""

    index: int
    stem: str
    image: Path
    relative: Dict[str, str]
    absolute: Dict[str, Path]

    def done(self) -> bool:
        return all(p.exists() for p in self.absolute.values())

    def existing(self) -> List[Path]:
        return [p for p in self.absolute.values() if p.exists()]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
