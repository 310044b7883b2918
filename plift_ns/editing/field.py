"""Instance-level scene editing (paper Sec. 4.1.2, Fig. 5): delete, duplicate and move a 3D instance.

An :class:`EditedField` wraps a trained :class:`~plift_ns.fields.panoptic_field.PanopticField` and exposes the same
four methods the model renders with (``get_density``, ``get_outputs``, ``semantic_logits``, ``instance_logits``);
every other attribute is forwarded to the wrapped field.

* **Delete** (paper: "setting the density of points where a predicted instance is equal to the instance to be deleted
  to be zero"): a sample is deleted when the semantic head's argmax is the instance's (thing) class and the instance
  head's argmax surrogate id is ``instance_id - 1`` (``instance_id`` uses the model's rendered numbering, where
  surrogate id ``j`` is shown as instance ``j + 1``).
* **Duplicate** (paper: "we manipulate the rays passing through the resulting region to query the original instance
  region instead"): a copy placed by a 4x4 transform ``T`` (normalised scene coordinates, i.e. the model's world
  frame). A sample ``x`` looks up the original field at ``y = T⁻¹x``; where ``y`` belongs to the instance and the
  source is denser than the scene at ``x``, the sample takes the source's density, colour (viewing direction rotated
  back into the source frame), class and surrogate-id logits.
* **Move** = Delete + Duplicate.

Edits act only in eval mode (rendering: viewer, ``ns-render``, ``plift-edit``); in training mode the wrapper is a
pass-through, and its ``state_dict`` uses the wrapped field's key names, so checkpoints stay loadable.

Each edit is restricted to a box around its instance, found once on a coarse grid of the field (``instance_region``):
only samples inside it are tested, which keeps the extra head evaluations cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from jaxtyping import Bool, Float
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from torch import Tensor, nn

from plift_ns.fields.panoptic_field import samples_at


@dataclass(frozen=True)
class Delete:
    """Remove one 3D instance: ``class_id`` (a thing class) and ``instance_id`` (rendered numbering, ≥ 1; 0 removes
    every sample of the class, e.g. a stuff class)."""

    class_id: int
    instance_id: int


@dataclass(frozen=True)
class Duplicate:
    """Add a copy of one 3D instance placed by ``transform`` (4x4, normalised scene coordinates: x ↦ T x)."""

    class_id: int
    instance_id: int
    transform: Tuple[Tuple[float, ...], ...] = field(default_factory=lambda: tuple(map(tuple, np.eye(4).tolist())))

    def matrix(self) -> np.ndarray:
        """The transform as a (4, 4) float64 array."""
        return np.asarray(self.transform, dtype=np.float64).reshape(4, 4)


@dataclass(frozen=True)
class Move:
    """Move one 3D instance by ``transform``: a Delete plus a Duplicate of the original."""

    class_id: int
    instance_id: int
    transform: Tuple[Tuple[float, ...], ...] = field(default_factory=lambda: tuple(map(tuple, np.eye(4).tolist())))

    def expand(self) -> List[Union[Delete, Duplicate]]:
        return [Delete(self.class_id, self.instance_id), Duplicate(self.class_id, self.instance_id, self.transform)]


Edit = Union[Delete, Duplicate, Move]


def make_transform(
    translate: Sequence[float] = (0.0, 0.0, 0.0),
    rotate_z_deg: float = 0.0,
    center: Optional[Sequence[float]] = None,
    scale: float = 1.0,
) -> Tuple[Tuple[float, ...], ...]:
    """A 4x4 transform (as nested tuples): rotate about the z axis by ``rotate_z_deg`` and scale, both about
    ``center`` (default: the origin), then translate."""
    c = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64)
    a = math.radians(rotate_z_deg)
    rot = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]]) * scale
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = c - rot @ c + np.asarray(translate, dtype=np.float64)
    return tuple(map(tuple, m.tolist()))


def _expand(edits: Sequence[Edit]) -> List[Union[Delete, Duplicate]]:
    out: List[Union[Delete, Duplicate]] = []
    for e in edits:
        out.extend(e.expand() if isinstance(e, Move) else [e])
    return out


@torch.no_grad()
def sample_labels(
    field: nn.Module, positions: Float[Tensor, "N 3"], chunk: int = 65536
) -> Tuple[Tensor, Tensor]:
    """Per-sample (class, instance) labels of the field's heads: argmax class, argmax surrogate id + 1."""
    sems, insts = [], []
    for i in range(0, positions.shape[0], chunk):
        p = positions[i : i + chunk]
        sems.append(field.semantic_logits(p).argmax(dim=-1))
        insts.append(field.instance_logits(p).argmax(dim=-1) + 1)
    if not sems:
        empty = torch.zeros(0, dtype=torch.long, device=positions.device)
        return empty, empty.clone()
    return torch.cat(sems), torch.cat(insts)


def matches(sem: Tensor, inst: Tensor, class_id: int, instance_id: int) -> Tensor:
    """Per-sample membership: the class matches and (instance_id 0 = the whole class) the instance id matches."""
    hit = sem == class_id
    return hit if instance_id == 0 else hit & (inst == instance_id)


@torch.no_grad()
def density_at(field: nn.Module, positions: Float[Tensor, "N 3"], chunk: int = 262144) -> Float[Tensor, " N"]:
    """The field's density at arbitrary positions."""
    out = [field.get_density(samples_at(positions[i : i + chunk]))[:, 0, 0] for i in range(0, len(positions), chunk)]
    return torch.cat(out) if out else torch.zeros(0, device=positions.device)


@dataclass
class InstanceRegion:
    """Where one instance lives, from a coarse grid of the field: member points, their box (dilated) and centre."""

    lo: Tensor
    hi: Tensor
    center: Tensor
    num_points: int

    def contains(self, positions: Float[Tensor, "*bs 3"]) -> Bool[Tensor, " *bs"]:
        return ((positions >= self.lo) & (positions <= self.hi)).all(dim=-1)


@torch.no_grad()
def instance_region(
    field: nn.Module,
    class_id: int,
    instance_id: int,
    resolution: int = 64,
    density_threshold: float = 1.0,
    dilate_voxels: float = 2.0,
) -> Optional[InstanceRegion]:
    """Evaluate the field on a ``resolution``³ grid over its aabb; the instance's occupied member points (density >
    ``density_threshold``, labels matching) give a box (dilated by ``dilate_voxels`` voxels). None if none found."""
    aabb = field.aabb.to(torch.float32)
    device = aabb.device
    axes = [torch.linspace(float(aabb[0, d]), float(aabb[1, d]), resolution, device=device) for d in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    occupied = grid[density_at(field, grid) > density_threshold]
    sem, inst = sample_labels(field, occupied)
    members = occupied[matches(sem, inst, class_id, instance_id)]
    if len(members) == 0:
        return None
    voxel = (aabb[1] - aabb[0]) / max(resolution - 1, 1)
    lo = members.min(dim=0).values - dilate_voxels * voxel
    hi = members.max(dim=0).values + dilate_voxels * voxel
    return InstanceRegion(lo=lo, hi=hi, center=members.mean(dim=0), num_points=int(len(members)))


class EditedField(nn.Module):
    """A PanopticField with instance edits applied in eval mode (see the module docstring)."""

    def __init__(
        self,
        base: nn.Module,
        edits: Sequence[Edit] = (),
        region_resolution: int = 64,
        region_density_threshold: float = 1.0,
    ) -> None:
        super().__init__()
        self.base = base
        self.edits: List[Union[Delete, Duplicate]] = _expand(edits)
        self.region_resolution = region_resolution
        self.region_density_threshold = region_density_threshold
        self._regions: Dict[Tuple[int, int], Optional[InstanceRegion]] = {}
        self._cache: Optional[Tuple[Any, Tuple[Tensor, Tensor, Tensor]]] = None
        self._register_state_dict_hook(_strip_base_prefix)
        self._register_load_state_dict_pre_hook(_add_base_prefix)
        self.train(base.training)

    # ------------------------------------------------------------------ plumbing
    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["base"], name)

    @property
    def active(self) -> bool:
        return bool(self.edits) and not self.training

    def region(self, class_id: int, instance_id: int) -> Optional[InstanceRegion]:
        """The (cached) region of an instance in the ORIGINAL field."""
        key = (int(class_id), int(instance_id))
        if key not in self._regions:
            self._regions[key] = instance_region(
                self.base, key[0], key[1], self.region_resolution, self.region_density_threshold
            )
        return self._regions[key]

    def _inverse(self, dup: Duplicate, device: torch.device) -> Tuple[Tensor, Tensor]:
        inv = np.linalg.inv(dup.matrix())
        return (
            torch.as_tensor(inv[:3, :3], dtype=torch.float32, device=device),
            torch.as_tensor(inv[:3, 3], dtype=torch.float32, device=device),
        )

    # ------------------------------------------------------------------ core
    @torch.no_grad()
    def resolve(self, positions: Float[Tensor, "N 3"]) -> Tuple[Tensor, Tensor, Tensor]:
        """Edited density (N,), source index (N,; -1 = the scene itself, k = the k-th edit, a Duplicate) and the
        positions to query the original field at (N, 3)."""
        density = density_at(self.base, positions)
        source = torch.full_like(density, -1, dtype=torch.long)
        query = positions.clone()
        deletes = [e for e in self.edits if isinstance(e, Delete)]
        for e in deletes:
            region = self.region(e.class_id, e.instance_id)
            if region is None:
                continue
            idx = (region.contains(positions) & (density > 0)).nonzero()[:, 0]
            if len(idx):
                sem, inst = sample_labels(self.base, positions[idx])
                density[idx[matches(sem, inst, e.class_id, e.instance_id)]] = 0.0
        for k, e in enumerate(self.edits):
            if not isinstance(e, Duplicate):
                continue
            region = self.region(e.class_id, e.instance_id)
            if region is None:
                continue
            rot, trans = self._inverse(e, positions.device)
            y = positions @ rot.T + trans
            idx = region.contains(y).nonzero()[:, 0]
            if not len(idx):
                continue
            d_src = density_at(self.base, y[idx])
            denser = d_src > density[idx]
            idx, d_src = idx[denser], d_src[denser]
            sem, inst = sample_labels(self.base, y[idx])
            member = matches(sem, inst, e.class_id, e.instance_id)
            idx, d_src = idx[member], d_src[member]
            density[idx] = d_src
            source[idx] = k
            query[idx] = y[idx]
        return density, source, query

    def _resolved(self, ray_samples: RaySamples) -> Tuple[Tensor, Tensor, Tensor]:
        """resolve() for a RaySamples, cached for the last one (get_density then get_outputs on the same samples)."""
        if self._cache is not None and self._cache[0] is ray_samples:
            return self._cache[1]
        positions = ray_samples.frustums.get_positions().reshape(-1, 3)
        result = self.resolve(positions)
        self._cache = (ray_samples, result)
        return result

    def _rotate_back(self, k: int, directions: Tensor) -> Tensor:
        rot, _ = self._inverse(self.edits[k], directions.device)  # type: ignore[arg-type]
        d = directions @ rot.T
        return d / d.norm(dim=-1, keepdim=True).clamp(min=1e-12) * directions.norm(dim=-1, keepdim=True)

    # ------------------------------------------------------------------ the field interface
    def get_density(self, ray_samples: RaySamples) -> Tensor:
        if not self.active:
            return self.base.get_density(ray_samples)
        density, _, _ = self._resolved(ray_samples)
        return density.reshape(*ray_samples.shape, 1)

    def get_outputs(self, ray_samples: RaySamples, density_embedding: Optional[Tensor] = None) -> Tensor:
        rgb = self.base.get_outputs(ray_samples)
        if not self.active:
            return rgb
        _, source, query = self._resolved(ray_samples)
        flat = rgb.reshape(-1, rgb.shape[-1]).clone()
        directions = ray_samples.frustums.directions.reshape(-1, 3)
        for k in source.unique().tolist():
            if k < 0:
                continue
            idx = (source == k).nonzero()[:, 0]
            flat[idx] = self.base.get_outputs(samples_at(query[idx], self._rotate_back(k, directions[idx])))[:, 0]
        return flat.reshape(rgb.shape)

    def _head(self, name: str, positions: Tensor) -> Tensor:
        head = getattr(self.base, name)
        values = head(positions)
        if not self.active or not any(isinstance(e, Duplicate) for e in self.edits):
            return values
        flat = positions.reshape(-1, 3)
        _, source, query = self.resolve(flat)
        moved = (source >= 0).nonzero()[:, 0]
        if len(moved):
            values = values.reshape(-1, values.shape[-1]).clone()
            values[moved] = head(query[moved])
            values = values.reshape(*positions.shape[:-1], -1)
        return values

    def semantic_logits(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs C"]:
        return self._head("semantic_logits", positions)

    def instance_logits(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs K"]:
        return self._head("instance_logits", positions)

    def sample_outputs(self, ray_samples: RaySamples, instance_rows: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """As :meth:`PanopticField.sample_outputs`, with the edits applied."""
        if not self.active:
            return self.base.sample_outputs(ray_samples, instance_rows)
        positions = ray_samples.frustums.get_positions()
        return {
            "rgb": self.get_outputs(ray_samples),
            "semantics": self.semantic_logits(positions),
            "instance": self.instance_logits(positions if instance_rows is None else positions[instance_rows]),
        }

    def forward(self, ray_samples: RaySamples, **kwargs: Any) -> Any:
        if not self.active:
            return self.base(ray_samples, **kwargs)
        density = self.get_density(ray_samples)
        return {FieldHeadNames.DENSITY: density, FieldHeadNames.RGB: self.get_outputs(ray_samples)}


def _strip_base_prefix(module: nn.Module, state_dict: Dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """state_dict keys of an EditedField are those of the wrapped field (checkpoints stay loadable)."""
    for key in [k for k in state_dict if k.startswith(prefix + "base.")]:
        state_dict[prefix + key[len(prefix) + 5 :]] = state_dict.pop(key)


def _add_base_prefix(state_dict: Dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + "base.")]:
        state_dict[prefix + "base." + key[len(prefix) :]] = state_dict.pop(key)


def base_field(model: nn.Module) -> nn.Module:
    """The model's unedited field."""
    f = model.field
    return f.base if isinstance(f, EditedField) else f


def apply_edits(model: nn.Module, edits: Sequence[Edit], **kwargs: Any) -> EditedField:
    """Wrap ``model.field`` in an EditedField with ``edits`` (replacing any earlier edits); returns the wrapper."""
    edited = EditedField(base_field(model), edits, **kwargs)
    model.field = edited
    return edited


def remove_edits(model: nn.Module) -> None:
    """Put the model's original field back."""
    model.field = base_field(model)
