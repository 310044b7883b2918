"""Scene-generation settings (:class:`SynthConfig`) and named presets."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, List

from plift_ns.errors import PliftDataError
from plift_ns.synthetic.noise import NoiseConfig


@dataclass
class SynthConfig:
    """What to generate: image size, number of train/test views, camera field of view, seeds and label noise."""

    width: int = 160
    """Image width in pixels."""
    height: int = 120
    """Image height in pixels."""
    num_train: int = 48
    """Number of training views."""
    num_test: int = 12
    """Number of test views, interleaved evenly along the camera loop (every k-th view)."""
    fov_deg: float = 70.0
    """Horizontal field of view in degrees."""
    seed: int = 0
    """Scene seed: room colours/jitter and the camera trajectory (the label noise also depends on it)."""
    scene_box_margin: float = 0.1
    """Metres added on every side of the room bounds for ``scene_box``."""
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    """Machine-label noise knobs."""

    @property
    def num_views(self) -> int:
        return self.num_train + self.num_test

    def test_indices(self) -> List[int]:
        """Indices (along the trajectory) of the test views: evenly interleaved, never the first view."""
        n, k = self.num_views, self.num_test
        return sorted({int((j + 0.5) * n / k) for j in range(k)}) if k > 0 else []

    def validate(self) -> None:
        if self.width < 8 or self.height < 8:
            raise PliftDataError(f"image size {self.width}x{self.height} is too small (min 8x8)")
        if self.num_train < 1 or self.num_test < 0:
            raise PliftDataError("need at least one training view and a non-negative number of test views")
        if len(self.test_indices()) != self.num_test:
            raise PliftDataError(f"cannot interleave {self.num_test} test views among {self.num_views} views")
        if not 10.0 <= self.fov_deg <= 150.0:
            raise PliftDataError(f"fov_deg={self.fov_deg} must be within [10, 150]")


PRESETS: Dict[str, SynthConfig] = {
    "tiny": SynthConfig(width=64, height=48, num_train=12, num_test=4),
    "demo": SynthConfig(width=160, height=120, num_train=96, num_test=24),
    "bench": SynthConfig(width=320, height=240, num_train=120, num_test=30),
    # real-size scene for memory and loading checks (ScanNet frames are 640x480; a scan has ~1000+ frames)
    "scannet-size": SynthConfig(width=640, height=480, num_train=1000, num_test=100),
}
PRESETS["ci"] = PRESETS["tiny"]


def preset(name: str) -> SynthConfig:
    """A fresh copy of a named preset (``tiny``/``ci``, ``demo``, ``bench``, ``scannet-size``)."""
    if name not in PRESETS:
        raise PliftDataError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})")
    return copy.deepcopy(PRESETS[name])
