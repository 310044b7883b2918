"""Procedural indoor room: a closed box shell plus furniture made of (yaw-rotated) boxes.

Every primitive carries its panoptic labels (class id, global instance id; 0 for stuff) and a procedural material,
so a renderer can produce exact ground truth. World frame: metres, z up, floor at z = 0.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from plift_ns.data.classes import ClassSet, load_class_set

Vec3 = Tuple[float, float, float]

#: Procedural patterns understood by the shader (index = pattern id).
PATTERNS = ("plain", "stripes", "checker", "noise", "grain")


@dataclass(frozen=True)
class Material:
    """A base colour modulated by a 3D-position-based pattern: ``albedo = color * (1 - contrast * pattern(p))``."""

    color: Vec3
    pattern: str = "plain"
    scale: float = 0.2
    contrast: float = 0.25
    axis: int = 0
    phase: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Box:
    """A box primitive rotated by ``yaw`` (radians) about the world z axis."""

    center: Vec3
    half: Vec3
    yaw: float
    class_id: int
    instance_id: int
    material: Material
    name: str


@dataclass(frozen=True)
class InstanceInfo:
    """One thing object of the room (all its parts share ``instance_id``)."""

    instance_id: int
    class_id: int
    name: str
    center: Vec3


@dataclass
class Room:
    """The inside of an axis-aligned box (walls, floor, ceiling) plus furniture boxes."""

    bounds_min: Vec3
    bounds_max: Vec3
    boxes: List[Box]
    shell_materials: Dict[str, Material]
    shell_classes: Dict[str, int]
    instances: List[InstanceInfo]
    class_set: ClassSet
    anchors: List[Vec3] = field(default_factory=list)

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.bounds_min) + np.asarray(self.bounds_max)) / 2.0

    @cached_property
    def arrays(self) -> "RoomArrays":
        return RoomArrays.from_room(self)

    def class_ids_present(self) -> List[int]:
        ids = {b.class_id for b in self.boxes} | set(self.shell_classes.values())
        return sorted(ids)

    def contains_point(self, p: Sequence[float], margin: float = 0.0) -> bool:
        """True if ``p`` lies inside any furniture box inflated by ``margin`` (or outside the shell shrunk by it)."""
        p = np.asarray(p, dtype=np.float64)
        lo, hi = np.asarray(self.bounds_min) + margin, np.asarray(self.bounds_max) - margin
        if np.any(p < lo) or np.any(p > hi):
            return True
        arr = self.arrays
        d = p[None, :] - arr.centers
        local = np.stack([arr.cos * d[:, 0] + arr.sin * d[:, 1], -arr.sin * d[:, 0] + arr.cos * d[:, 1], d[:, 2]], 1)
        return bool(np.any(np.all(np.abs(local) <= arr.halves + margin, axis=1)))


# Room shell faces in the order the renderer indexes them: (axis, sign of the outward direction).
SHELL_FACES = (("wall_x0", 0, -1), ("wall_x1", 0, 1), ("wall_y0", 1, -1), ("wall_y1", 1, 1), ("floor", 2, -1), ("ceiling", 2, 1))


@dataclass(frozen=True)
class RoomArrays:
    """Struct-of-arrays view of a room for vectorised ray casting (primitives first, then the 6 shell faces)."""

    centers: np.ndarray  # (P, 3)
    halves: np.ndarray  # (P, 3)
    cos: np.ndarray  # (P,)
    sin: np.ndarray  # (P,)
    class_ids: np.ndarray  # (P + 6,)
    instance_ids: np.ndarray  # (P + 6,)
    colors: np.ndarray  # (P + 6, 3)
    patterns: np.ndarray  # (P + 6,) int
    scales: np.ndarray  # (P + 6,)
    contrasts: np.ndarray  # (P + 6,)
    axes: np.ndarray  # (P + 6,) int
    phases: np.ndarray  # (P + 6, 3)
    bounds_min: np.ndarray
    bounds_max: np.ndarray

    @classmethod
    def from_room(cls, room: Room) -> "RoomArrays":
        boxes = room.boxes
        mats = [b.material for b in boxes] + [room.shell_materials[name] for name, _, _ in SHELL_FACES]
        cls_ids = [b.class_id for b in boxes] + [room.shell_classes[name] for name, _, _ in SHELL_FACES]
        inst_ids = [b.instance_id for b in boxes] + [0] * len(SHELL_FACES)
        yaw = np.array([b.yaw for b in boxes], dtype=np.float64)
        return cls(
            centers=np.array([b.center for b in boxes], dtype=np.float64).reshape(-1, 3),
            halves=np.array([b.half for b in boxes], dtype=np.float64).reshape(-1, 3),
            cos=np.cos(yaw),
            sin=np.sin(yaw),
            class_ids=np.array(cls_ids, dtype=np.int64),
            instance_ids=np.array(inst_ids, dtype=np.int64),
            colors=np.array([m.color for m in mats], dtype=np.float64),
            patterns=np.array([PATTERNS.index(m.pattern) for m in mats], dtype=np.int64),
            scales=np.array([m.scale for m in mats], dtype=np.float64),
            contrasts=np.array([m.contrast for m in mats], dtype=np.float64),
            axes=np.array([m.axis for m in mats], dtype=np.int64),
            phases=np.array([m.phase for m in mats], dtype=np.float64),
            bounds_min=np.asarray(room.bounds_min, dtype=np.float64),
            bounds_max=np.asarray(room.bounds_max, dtype=np.float64),
        )


Part = Tuple[Vec3, Vec3, float]  # local centre, half size, colour multiplier


class _RoomBuilder:
    """Places composite objects (parts in an object frame) into world coordinates, assigning ids and materials."""

    def __init__(self, class_set: ClassSet, rng: np.random.Generator) -> None:
        self.class_set = class_set
        self.rng = rng
        self.boxes: List[Box] = []
        self.instances: List[InstanceInfo] = []
        self.anchors: List[Vec3] = []
        self._counts: Dict[str, int] = {}

    def material(self, hue: float, sat: float = 0.45, val: float = 0.75, pattern: Optional[str] = None) -> Material:
        """A random-ish material around a hue; pattern drawn at random unless given."""
        rng = self.rng
        h = (hue + rng.uniform(-0.04, 0.04)) % 1.0
        s = float(np.clip(sat + rng.uniform(-0.12, 0.12), 0.05, 0.95))
        v = float(np.clip(val + rng.uniform(-0.1, 0.1), 0.15, 0.95))
        return Material(
            color=tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v)),  # type: ignore[arg-type]
            pattern=pattern or str(rng.choice(PATTERNS[1:])),
            scale=float(rng.uniform(0.06, 0.25)),
            contrast=float(rng.uniform(0.2, 0.45)),
            axis=int(rng.integers(0, 3)),
            phase=tuple(float(x) for x in rng.uniform(0.0, 10.0, size=3)),  # type: ignore[arg-type]
        )

    def add(
        self,
        class_name: str,
        parts: Sequence[Part],
        position: Tuple[float, float],
        facing_deg: float,
        material: Material,
        jitter: float = 0.0,
        yaw_jitter_deg: float = 0.0,
    ) -> int:
        """Add one object; returns its instance id (0 for stuff). ``facing_deg`` is the world direction of local -y."""
        class_id = self.class_set.index(class_name)
        isthing = self.class_set.isthing[class_id]
        k = self._counts.get(class_name, 0)
        self._counts[class_name] = k + 1
        instance_id = len(self.instances) + 1 if isthing else 0
        px = position[0] + self.rng.uniform(-jitter, jitter)
        py = position[1] + self.rng.uniform(-jitter, jitter)
        yaw = math.radians(facing_deg + 90.0 + self.rng.uniform(-yaw_jitter_deg, yaw_jitter_deg))
        c, s = math.cos(yaw), math.sin(yaw)
        zs = []
        for i, (center, half, shade) in enumerate(parts):
            color = tuple(min(1.0, ch * shade) for ch in material.color)
            mat = Material(color, material.pattern, material.scale, material.contrast, material.axis, material.phase)  # type: ignore[arg-type]
            wx = px + c * center[0] - s * center[1]
            wy = py + s * center[0] + c * center[1]
            self.boxes.append(Box((wx, wy, center[2]), half, yaw, class_id, instance_id, mat, f"{class_name}_{k}/{i}"))
            zs.append(center[2])
        anchor = (px, py, float(np.mean(zs)))
        self.anchors.append(anchor)
        if isthing:
            self.instances.append(InstanceInfo(instance_id, class_id, f"{class_name}_{k}", anchor))
        return instance_id


def _chair(w: float = 0.46, d: float = 0.46, seat: float = 0.45, back: float = 0.45) -> List[Part]:
    leg_h = seat - 0.05
    parts: List[Part] = [((0.0, 0.0, seat - 0.025), (w / 2, d / 2, 0.025), 1.0),
                         ((0.0, d / 2 - 0.025, seat + back / 2), (w / 2, 0.025, back / 2), 0.9)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(((sx * (w / 2 - 0.03), sy * (d / 2 - 0.03), leg_h / 2), (0.02, 0.02, leg_h / 2), 0.55))
    return parts


def _table(w: float, d: float, h: float) -> List[Part]:
    leg_h = h - 0.05
    parts: List[Part] = [((0.0, 0.0, h - 0.025), (w / 2, d / 2, 0.025), 1.0)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(((sx * (w / 2 - 0.06), sy * (d / 2 - 0.06), leg_h / 2), (0.03, 0.03, leg_h / 2), 0.6))
    return parts


def _sofa(w: float = 2.0, d: float = 0.9) -> List[Part]:
    return [
        ((0.0, 0.0, 0.2), (w / 2 - 0.12, d / 2, 0.2), 0.85),  # base
        ((0.0, -0.08, 0.45), (w / 2 - 0.14, d / 2 - 0.1, 0.05), 1.0),  # seat cushion
        ((0.0, d / 2 - 0.1, 0.64), (w / 2 - 0.12, 0.1, 0.22), 0.95),  # back
        ((-(w / 2 - 0.06), 0.0, 0.3), (0.06, d / 2, 0.3), 0.8),  # arms
        (((w / 2 - 0.06), 0.0, 0.3), (0.06, d / 2, 0.3), 0.8),
    ]


def _bed(w: float = 1.6, length: float = 2.0) -> List[Part]:
    return [
        ((0.0, 0.0, 0.15), (w / 2, length / 2, 0.15), 0.7),  # frame
        ((0.0, -0.03, 0.41), (w / 2 - 0.04, length / 2 - 0.08, 0.11), 1.0),  # mattress
        ((0.0, length / 2 - 0.04, 0.55), (w / 2, 0.04, 0.55), 0.6),  # headboard
        ((0.0, length / 2 - 0.33, 0.565), (w / 2 - 0.25, 0.15, 0.045), 1.15),  # pillow
    ]


def _tv(w: float, h: float, z0: float, with_stand: bool) -> List[Part]:
    parts: List[Part] = [((0.0, 0.0, z0 + (0.08 if with_stand else 0.0) + h / 2), (w / 2, 0.03, h / 2), 1.0)]
    if with_stand:
        parts.append(((0.0, 0.0, z0 + 0.04), (0.16, 0.08, 0.04), 0.5))
    return parts


def _shelves(w: float = 0.8, d: float = 0.35, h: float = 1.9) -> List[Part]:
    parts: List[Part] = [((-(w / 2 - 0.02), 0.0, h / 2), (0.02, d / 2, h / 2), 0.9),
                         (((w / 2 - 0.02), 0.0, h / 2), (0.02, d / 2, h / 2), 0.9),
                         ((0.0, d / 2 - 0.01, h / 2), (w / 2 - 0.04, 0.01, h / 2), 0.6)]
    for z in np.linspace(0.05, h - 0.02, 5):
        parts.append(((0.0, 0.0, float(z)), (w / 2 - 0.04, d / 2 - 0.02, 0.02), 1.0))
    return parts


def build_room(seed: int = 0, class_set: Optional[ClassSet] = None) -> Room:
    """Build the studio-apartment room: 12 stuff classes and 6 thing classes (11 instances), seeded colours/jitter.

    Room interior: x in [-3.5, 3.5], y in [-3, 3], z in [0, 2.8] (metres). Objects are kept away from the central
    camera loop so trajectories from :mod:`plift_ns.synthetic.cameras` stay inside free space.
    """
    cs = class_set or load_class_set("scannet21")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    b = _RoomBuilder(cs, rng)
    x0, x1, y0, y1, zt = -3.5, 3.5, -3.0, 3.0, 2.8
    g = 0.012  # gap between wall-mounted items and the wall (no coplanar faces)

    # Central dining area: table (stuff) + four chairs (things).
    wood = b.material(0.08, 0.55, 0.55, "grain")
    b.add("table", _table(1.4, 0.8, 0.75), (0.9, -0.3), -90, wood, jitter=0.03)
    for cx, cy, facing in ((0.55, -0.98, 90), (1.25, -0.98, 90), (0.55, 0.38, -90), (1.25, 0.38, -90)):
        b.add("chair", _chair(), (cx, cy), facing, b.material(rng.uniform(0, 1), 0.55, 0.7), jitter=0.03, yaw_jitter_deg=12)

    # Living area: two sofas, coffee table, rug, floor lamp.
    b.add("sofa", _sofa(2.0, 0.9), (-1.3, 1.3), -90, b.material(0.6, 0.5, 0.6), jitter=0.03)
    b.add("sofa", _sofa(1.8, 0.9), (x0 + 0.47, -0.25), 0, b.material(0.95, 0.45, 0.6), jitter=0.02)
    b.add("table", _table(1.0, 0.5, 0.42), (-1.35, 0.15), -90, b.material(0.1, 0.3, 0.45, "grain"), jitter=0.03)
    b.add("otherprop", [((0.0, 0.0, 0.006), (1.1, 0.75, 0.006), 1.0)], (-1.5, 0.2), -90, b.material(0.0, 0.5, 0.55, "checker"))
    b.add("lamp", [((0.0, 0.0, 0.015), (0.15, 0.15, 0.015), 0.5), ((0.0, 0.0, 0.75), (0.02, 0.02, 0.72), 0.4),
                   ((0.0, 0.0, 1.6), (0.2, 0.2, 0.16), 1.2)], (0.0, 2.55), -90, b.material(0.13, 0.35, 0.8, "stripes"))

    # South wall (y0): TV stand cabinet + TV, shelves in the corner, window with curtains.
    b.add("cabinet", [((0.0, 0.0, 0.25), (0.8, 0.22, 0.25), 1.0), ((0.0, -0.225, 0.25), (0.7, 0.006, 0.18), 0.8)],
          (-1.3, y0 + 0.22 + g), 90, b.material(0.08, 0.25, 0.35, "grain"))
    b.add("television", _tv(1.2, 0.68, 0.5, True), (-1.3, y0 + 0.22 + g), 90, b.material(0.65, 0.2, 0.2, "noise"))
    b.add("shelves", _shelves(), (x0 + 0.4 + g + 0.25, y0 + 0.175 + g), 90, b.material(0.1, 0.4, 0.6, "grain"))
    b.add("window", [((0.0, 0.0, 1.5), (0.7, 0.02, 0.6), 1.0), ((0.0, -0.025, 1.5), (0.72, 0.006, 0.04), 0.7)],
          (1.3, y0 + 0.02 + g), 90, b.material(0.55, 0.25, 0.92, "noise"))
    curtain = b.material(0.3, 0.4, 0.65, "stripes")
    curtain = Material(curtain.color, "stripes", 0.07, 0.35, 0, curtain.phase)
    for cx in (1.3 - 0.95, 1.3 + 0.95):
        b.add("curtain", [((0.0, 0.0, 1.3), (0.2, 0.03, 1.2), 1.0)], (cx, y0 + 0.07 + g), 90, curtain)

    # West wall (x0): door with handle, a picture (otherprop).
    b.add("door", [((0.0, 0.0, 1.025), (0.45, 0.02, 1.025), 1.0), ((0.33, -0.04, 1.0), (0.06, 0.02, 0.015), 0.4)],
          (x0 + 0.02 + g, 1.95), 0, b.material(0.09, 0.35, 0.7, "grain"))
    b.add("otherprop", [((0.0, 0.0, 1.55), (0.45, 0.015, 0.32), 1.0)], (x0 + 0.015 + g, -0.25), 0,
          b.material(rng.uniform(0, 1), 0.6, 0.7, "checker"))

    # East wall (x1): kitchen counter with sink, upper cabinets, refrigerator, second TV near the bed.
    b.add("counter", [((0.0, 0.02, 0.44), (1.1, 0.28, 0.44), 0.85), ((0.0, 0.0, 0.9), (1.12, 0.31, 0.02), 1.0)],
          (x1 - 0.31 - g, -0.9), 180, b.material(0.0, 0.05, 0.8, "noise"))
    b.add("sink", [((0.0, 0.0, 0.945), (0.25, 0.2, 0.025), 1.0), ((0.0, 0.17, 1.04), (0.025, 0.025, 0.1), 0.7)],
          (x1 - 0.3 - g, -0.6), 180, b.material(0.58, 0.08, 0.85, "plain"))
    b.add("cabinet", [((0.0, 0.0, 1.85), (1.1, 0.17, 0.35), 1.0)], (x1 - 0.17 - g, -0.9), 180,
          b.material(0.33, 0.3, 0.7, "stripes"))
    b.add("refrigerator", [((0.0, 0.0, 0.9), (0.35, 0.33, 0.9), 1.0), ((-0.25, -0.34, 1.1), (0.02, 0.015, 0.25), 0.5)],
          (x1 - 0.33 - g, -2.55), 180, b.material(0.55, 0.1, 0.9, "noise"))
    b.add("television", _tv(0.9, 0.52, 1.15, False), (x1 - 0.03 - g, 1.8), 180, b.material(0.7, 0.25, 0.22, "noise"))

    # North wall (y1): bed with nightstand, second window with a curtain.
    b.add("bed", _bed(1.6, 2.0), (2.15, y1 - 1.0 - g), -90, b.material(rng.uniform(0, 1), 0.35, 0.75), jitter=0.02)
    b.add("cabinet", [((0.0, 0.0, 0.25), (0.22, 0.2, 0.25), 1.0)], (0.98, y1 - 0.2 - g), -90, b.material(0.08, 0.5, 0.5, "grain"))
    b.add("window", [((0.0, 0.0, 1.6), (0.6, 0.02, 0.55), 1.0)], (-1.3, y1 - 0.02 - g), -90, b.material(0.55, 0.2, 0.95, "noise"))
    b.add("curtain", [((0.0, 0.0, 1.3), (0.22, 0.03, 1.2), 1.0)], (-2.2, y1 - 0.07 - g), -90, curtain)

    shell = {
        "wall_x0": b.material(0.12, 0.15, 0.85, "noise"),
        "wall_x1": b.material(0.12, 0.15, 0.85, "noise"),
        "wall_y0": b.material(0.55, 0.12, 0.82, "noise"),
        "wall_y1": b.material(0.55, 0.12, 0.82, "stripes"),
        "floor": b.material(0.07, 0.5, 0.55, "checker"),
        "ceiling": b.material(0.15, 0.05, 0.92, "noise"),
    }
    shell["floor"] = Material(shell["floor"].color, "checker", 0.5, 0.3, 0, shell["floor"].phase)
    shell_classes = {name: cs.index("wall") for name in ("wall_x0", "wall_x1", "wall_y0", "wall_y1")}
    shell_classes.update(floor=cs.index("floor"), ceiling=cs.index("ceiling"))
    return Room((x0, y0, 0.0), (x1, y1, zt), b.boxes, shell, shell_classes, b.instances, cs, b.anchors)
