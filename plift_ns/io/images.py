"""Reading an RGB image, with one clear error naming the file when it cannot be decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from plift_ns.errors import PliftDataError


def read_rgb(path: Path) -> np.ndarray:
    """An image as a writable (H, W, 3) uint8 array; a missing or broken file raises :class:`PliftDataError`."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, ValueError) as err:
        raise PliftDataError(f"cannot read image ({err})", path) from None
