"""Label-file primitives shared by the label writer and the COCO panoptic export: one frame's label paths
(:class:`FrameFiles`), PNG encoding, and the atomic writes of :mod:`plift_ns.io.atomic` (re-exported here)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
from PIL import Image

from plift_ns.io.atomic import atomic_write_bytes, atomic_write_json

__all__ = ["FrameFiles", "atomic_write_bytes", "atomic_write_json", "png_bytes"]


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


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
