"""Panoptic radiance field: nerfstudio's TensoRF field (density + colour) plus semantic and surrogate-id MLPs."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from jaxtyping import Bool, Float
from nerfstudio.cameras.rays import Frustums, RaySamples
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.field_components.encodings import NeRFEncoding, TensorVMEncoding
from nerfstudio.field_components.mlp import MLP
from nerfstudio.fields.tensorf_field import TensoRFField
from torch import Tensor, nn


class PanopticField(TensoRFField):
    """TensoRF VM density/appearance (Sec. 3.2, supp. C.1) + two position-only heads without positional encoding:
    a semantic MLP (xyz → C class logits) and an instance MLP (xyz → K surrogate-id logits). ``head_frequencies`` > 0
    adds a frequency encoding of xyz, ``head_grid_resolution`` > 0 a small VM grid shared by both heads (neither is in
    the paper: they let short CPU runs fit sharp maps)."""

    OPTIONS = (
        "num_den_components", "num_color_components", "appearance_dim", "semantic_layers", "semantic_width",
        "instance_layers", "instance_width", "head_frequencies", "head_grid_resolution", "head_grid_components",
        "head_appearance", "color_mlp_width", "use_sh", "sh_levels", "density_activation", "density_shift",
        "density_scale", "render_density_volume",
    )
    """Constructor arguments a model config carries under the same names."""

    def __init__(
        self,
        aabb: Tensor,
        num_classes: int,
        num_instances: int,
        resolution: int = 128,
        num_den_components: int = 16,
        num_color_components: int = 48,
        appearance_dim: int = 27,
        semantic_layers: int = 5,
        semantic_width: int = 256,
        instance_layers: int = 3,
        instance_width: int = 256,
        head_frequencies: int = 0,
        head_grid_resolution: int = 0,
        head_grid_components: int = 16,
        head_appearance: bool = False,
        color_mlp_width: int = 128,
        use_sh: bool = False,
        sh_levels: int = 3,
        density_activation: str = "relu",
        density_shift: float = -10.0,
        density_scale: float = 25.0,
        render_density_volume: bool = True,
    ) -> None:
        super().__init__(
            aabb,
            feature_encoding=NeRFEncoding(in_dim=appearance_dim, num_frequencies=2, min_freq_exp=0, max_freq_exp=2),
            direction_encoding=NeRFEncoding(in_dim=3, num_frequencies=2, min_freq_exp=0, max_freq_exp=2),
            density_encoding=TensorVMEncoding(resolution=resolution, num_components=num_den_components),
            color_encoding=TensorVMEncoding(resolution=resolution, num_components=num_color_components),
            appearance_dim=appearance_dim,
            head_mlp_num_layers=2,
            head_mlp_layer_width=color_mlp_width,
            use_sh=use_sh,
            sh_levels=sh_levels,
        )
        if density_activation not in ("relu", "softplus"):
            raise ValueError(f"density_activation must be 'relu' or 'softplus', not {density_activation!r}")
        self.density_activation = density_activation
        self.density_shift = density_shift
        self.density_scale = density_scale
        self.render_density_volume = render_density_volume
        self._volume: Optional[Tuple[Tuple, Tensor]] = None  # (density parameters it was summed from, volume)
        self.head_encoding = (
            NeRFEncoding(3, head_frequencies, 0, head_frequencies - 1, include_input=True) if head_frequencies > 0 else None
        )
        head_in = 3 if self.head_encoding is None else self.head_encoding.get_out_dim()
        self.head_grid = (
            TensorVMEncoding(resolution=head_grid_resolution, num_components=head_grid_components)
            if head_grid_resolution > 0
            else None
        )
        if self.head_grid is not None:
            head_in += self.head_grid.get_out_dim()
        self.head_appearance = head_appearance
        if head_appearance:
            head_in += self.B.out_features
        self.semantic_mlp = MLP(
            in_dim=head_in, num_layers=semantic_layers, layer_width=semantic_width, out_dim=num_classes, activation=nn.ReLU()
        )
        self.instance_mlp = MLP(
            in_dim=head_in, num_layers=instance_layers, layer_width=instance_width, out_dim=num_instances, activation=nn.ReLU()
        )

    def get_density(self, ray_samples: RaySamples) -> Float[Tensor, "*bs 1"]:
        """``relu`` (nerfstudio's TensoRF): ReLU of the summed VM components. ``softplus`` (the original TensoRF):
        ``density_scale`` × softplus(sum + ``density_shift``), so space starts empty instead of foggy. In eval mode
        with ``render_density_volume``: the same values looked up in :meth:`cached_density_volume`."""
        if not self.training and self.render_density_volume:
            return self.density_from_volume(self.cached_density_volume(), ray_samples.frustums.get_positions())
        if self.density_activation == "relu":
            return super().get_density(ray_samples)
        features = self.density_encoding(self.normalized_positions(ray_samples.frustums.get_positions()))
        return self._activate_density(features.sum(dim=-1, keepdim=True))

    def _activate_density(self, summed: Float[Tensor, "*bs 1"]) -> Float[Tensor, "*bs 1"]:
        if self.density_activation == "relu":
            return torch.relu(summed)
        return torch.nn.functional.softplus(summed + self.density_shift) * self.density_scale

    @torch.no_grad()
    def density_volume(self) -> Float[Tensor, "1 1 R R R"]:
        """The density grid's summed VM components at every grid vertex, laid out (z, y, x) for ``grid_sample``.

        A VM component is a plane's bilinear interpolation times a line's linear one, i.e. a trilinear interpolation
        of the outer product of their vertex values; so trilinear interpolation of this volume equals the summed
        components at any point (zero padding outside included), and one 3-D lookup replaces six 2-D/1-D ones."""
        planes = self.density_encoding.plane_coef  # type: ignore[union-attr]
        lines = self.density_encoding.line_coef[..., 0]  # type: ignore[union-attr]
        volume = torch.einsum("cyx,cz->zyx", planes[0], lines[0])
        volume += torch.einsum("czx,cy->zyx", planes[1], lines[1])
        volume += torch.einsum("czy,cx->zyx", planes[2], lines[2])
        return volume[None, None]

    def cached_density_volume(self) -> Float[Tensor, "1 1 R R R"]:
        """:meth:`density_volume`, summed again whenever a density parameter was replaced (upsampling) or changed in
        place (an optimiser step, e.g. while the viewer renders during training)."""
        key = tuple((id(p), p._version) for p in self.density_encoding.parameters())
        if self._volume is None or self._volume[0] != key:
            self._volume = (key, self.density_volume())
        return self._volume[1]

    def density_from_volume(
        self, volume: Float[Tensor, "1 1 R R R"], positions: Float[Tensor, "*bs 3"]
    ) -> Float[Tensor, "*bs 1"]:
        """``get_density`` at ``positions`` from a :meth:`density_volume` (same values up to rounding)."""
        summed = trilinear_lookup(volume, self.normalized_positions(positions).reshape(-1, 3))
        return self._activate_density(summed.reshape(*positions.shape[:-1], 1))

    def normalized_positions(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 3"]:
        """World positions → [-1, 1] inside the scene box."""
        return SceneBox.get_normalized_positions(positions, self.aabb) * 2 - 1

    def appearance(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs A"]:
        """TensoRF's appearance features (colour VM grid → B) at world positions."""
        return self.B(self.color_encoding(self.normalized_positions(positions)))

    def head_input(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs D"]:
        """The heads' input: normalised xyz (paper), optionally with a low-frequency encoding, a small VM grid and the
        appearance features (without gradient: segmentation never moves colour), all faster to fit than xyz alone."""
        x = self.normalized_positions(positions)
        features = [x if self.head_encoding is None else self.head_encoding(x)]
        if self.head_grid is not None:
            features.append(self.head_grid(x))
        if self.head_appearance:
            with torch.no_grad():
                features.append(self.appearance(positions))
        return torch.cat(features, dim=-1)

    def sample_outputs(
        self, ray_samples: RaySamples, instance_rows: Optional[Bool[Tensor, " M"]] = None
    ) -> Dict[str, Tensor]:
        """Colour, class logits and surrogate-id logits of M flat samples, computing the shared inputs once: the
        appearance features feed the colour MLP and (detached) both heads; the heads' input is built once. Instance
        logits are computed for ``instance_rows`` only (all rows when None). Same values as ``get_outputs``,
        ``semantic_logits`` and ``instance_logits`` called separately."""
        positions = ray_samples.frustums.get_positions()
        x = self.normalized_positions(positions)
        appearance = self.B(self.color_encoding(x))
        rgb = self.colour(appearance, ray_samples.frustums.directions)
        features = [x if self.head_encoding is None else self.head_encoding(x)]
        if self.head_grid is not None:
            features.append(self.head_grid(x))
        if self.head_appearance:
            features.append(appearance.detach())
        head_in = torch.cat(features, dim=-1)
        instance_in = head_in if instance_rows is None else head_in[instance_rows]
        return {"rgb": rgb, "semantics": self.semantic_mlp(head_in), "instance": self.instance_mlp(instance_in)}

    def colour(self, appearance: Float[Tensor, "*bs A"], directions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 3"]:
        """TensoRF's colour decoder (as in nerfstudio's ``TensoRFField.get_outputs``) on given appearance features:
        its MLP, or spherical harmonics when ``use_sh``."""
        if self.use_sh:
            sh = self.sh(directions)[..., None, :]
            return torch.relu((sh * appearance.view(*appearance.shape[:-1], 3, sh.shape[-1])).sum(dim=-1) + 0.5)
        encoded = torch.cat(
            [appearance, directions, self.feature_encoding(appearance), self.direction_encoding(directions)], dim=-1
        )
        return self.field_output_rgb(self.mlp_head(encoded))

    def semantic_logits(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs C"]:
        return self.semantic_mlp(self.head_input(positions))

    def instance_logits(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs K"]:
        return self.instance_mlp(self.head_input(positions))

    def upsample_grids(self, resolution: int) -> None:
        self.density_encoding.upsample_grid(resolution)  # type: ignore[operator]
        self.color_encoding.upsample_grid(resolution)  # type: ignore[operator]


def trilinear_lookup(volume: Float[Tensor, "1 C D H W"], points: Float[Tensor, "M 3"]) -> Float[Tensor, "C M"]:
    """``grid_sample`` of one volume at M points in [-1, 1]³ (x, y, z order; zero outside; corners aligned).

    On CPU the points are split into one batch per thread over the same (expanded, not copied) volume: PyTorch's CPU
    3-D grid sampler parallelises over the batch only, so a single batch runs on one core. Same values either way."""
    batches = torch.get_num_threads() if points.device.type == "cpu" else 1
    m = points.shape[0]
    if batches <= 1 or m < 2 * batches:
        return torch.nn.functional.grid_sample(volume, points.reshape(1, -1, 1, 1, 3), align_corners=True).reshape(-1, m)
    per = -(-m // batches)
    padded = torch.cat([points, points.new_zeros(per * batches - m, 3)]) if per * batches > m else points
    values = torch.nn.functional.grid_sample(
        volume.expand(batches, -1, -1, -1, -1), padded.reshape(batches, per, 1, 1, 3), align_corners=True
    )  # (batches, C, per, 1, 1)
    return values.reshape(batches, -1, per).permute(1, 0, 2).reshape(volume.shape[1], -1)[:, :m]


def samples_at(positions: Float[Tensor, "N 3"], directions: Optional[Float[Tensor, "N 3"]] = None) -> RaySamples:
    """RaySamples of shape (N, 1) whose sample positions are exactly ``positions`` (to query any field method)."""
    n = positions.shape[0]
    if directions is None:
        directions = torch.zeros_like(positions)
        directions[:, 2] = 1.0
    zeros = torch.zeros((n, 1, 1), dtype=positions.dtype, device=positions.device)
    frustums = Frustums(
        origins=positions[:, None, :],
        directions=directions[:, None, :],
        starts=zeros,
        ends=zeros.clone(),
        pixel_area=torch.ones_like(zeros),
    )
    return RaySamples(frustums=frustums)
