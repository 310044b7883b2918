"""Procedural indoor panoptic scenes with exact ground truth and a machine-label noise simulator (``plift-synth``).

Modules: ``scene`` (room layout and box primitives), ``cameras`` (intrinsics, look-at, in-room camera loop),
``render`` (exact vectorised ray casting), ``noise`` (2D panoptic network simulator), ``config`` (presets),
``writer`` (scene folder in the data contract), ``preview`` (colour-coded composites) and ``cli`` (``plift-synth``).
"""

from plift_ns.synthetic.cameras import Intrinsics, look_at, make_trajectory
from plift_ns.synthetic.config import PRESETS, SynthConfig, preset
from plift_ns.synthetic.noise import MachineLabels, NoiseConfig, NoiseCounts, simulate_labels
from plift_ns.synthetic.render import RenderedView, render_view
from plift_ns.synthetic.scene import Box, Material, Room, build_room
from plift_ns.synthetic.writer import generate_scene

__all__ = [
    "PRESETS",
    "Box",
    "Intrinsics",
    "MachineLabels",
    "Material",
    "NoiseConfig",
    "NoiseCounts",
    "RenderedView",
    "Room",
    "SynthConfig",
    "build_room",
    "generate_scene",
    "look_at",
    "make_trajectory",
    "preset",
    "render_view",
    "simulate_labels",
]
