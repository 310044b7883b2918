"""The Panoptic Lifting model (Siddiqui et al., CVPR 2023) as a nerfstudio Model.

TensoRF colour/density (reusing nerfstudio's TensoRF model: samplers, upsampling schedule, regularisers) plus a
semantic-probability field and a surrogate-instance field, trained with L_RGB + L_sem on R_S and L_ins + L_con on R_I.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Literal, Optional, Tuple, Type
from unittest import mock

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.model_components.losses import DepthLossType, depth_loss, distortion_loss
from nerfstudio.model_components.renderers import DepthRenderer
from nerfstudio.model_components.scene_colliders import AABBBoxCollider
from nerfstudio.models.tensorf import TensoRFModel, TensoRFModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor
from torch.nn import Parameter

from plift_ns import losses
from plift_ns.colors import dim_colors, instance_colors
from plift_ns.data.classes import ClassSet
from plift_ns.errors import PliftConfigError
from plift_ns.fields.occupancy import OccupancyGrid
from plift_ns.fields.panoptic_field import PanopticField, samples_at
from plift_ns.models import filled_frames, guided_sampling
from plift_ns.models.fragments import merge_instance_fragments
from plift_ns.models.viewer_gui import PanopticViewerGUI, in_viewer_render_thread, panoptic_overlay

LABEL_COLOURS = ("semantics_colormap", "instance_colormap")
"""Outputs that colour labels (one colour per class / instance): copied, never interpolated, in filled frames."""
DEPRECATED_FLAGS = {"stop_semantic_gradients": "stop_head_gradients", "use_tta_confidence": "use_label_probabilities"}
"""Old model-config names → new ones; old config.yml files and command lines keep working for one release."""


@dataclass
class PanopticLiftingModelConfig(TensoRFModelConfig):
    """Panoptic Lifting model. Every robustness component of the paper's Table 2 is a switch."""

    _target: Type = field(default_factory=lambda: PanopticLiftingModel)
    init_resolution: int = 128
    """TensoRF grid resolution at the start (paper: 128³)."""
    final_resolution: int = 192
    """TensoRF grid resolution at the end (paper: 192³)."""
    upsampling_iters: Tuple[int, ...] = (2000, 3000, 4000, 5500, 7000)
    num_uniform_samples: int = 200
    """Samples per ray for the density-only pass that places the fine samples."""
    num_samples: int = 50
    """Fine samples per ray (full field evaluation)."""
    regularization: str = "l1"
    camera_optimizer: CameraOptimizerConfig = field(default_factory=lambda: CameraOptimizerConfig(mode="off"))
    num_surrogate_ids: int = 50
    """K: size of the surrogate instance-id set J (paper: 50)."""
    semantic_layers: int = 5
    semantic_width: int = 256
    instance_layers: int = 3
    instance_width: int = 256
    head_frequencies: int = 0
    """Frequency bands of xyz fed to both heads (0 = raw xyz as in the paper)."""
    head_grid_resolution: int = 0
    """Resolution of a small VM feature grid shared by both heads (0 = none, as in the paper)."""
    head_grid_components: int = 16
    """Components per plane/line of that grid."""
    head_appearance: bool = False
    """Also feed both heads TensoRF's appearance features (detached: segmentation never moves colour); not in the
    paper, it lets short runs place class boundaries where the colour changes."""
    density_activation: Literal["relu", "softplus"] = "relu"
    """``relu``: nerfstudio's TensoRF density (ReLU of the summed components; space starts foggy). ``softplus``: the
    original TensoRF's ``density_scale`` × softplus(sum + ``density_shift``); space starts empty."""
    density_shift: float = -10.0
    density_scale: float = 25.0
    distortion_loss_mult: float = 0.0
    """Weight of mip-NeRF 360's distortion loss on the fine samples' weights (0 = off, as in the paper): it pulls each
    ray's weight into one compact interval, against a foggy field that spreads it along the whole ray."""
    depth_loss_mult: float = 0.0
    """Weight of a depth loss on the fine samples' weights where the scene has depth maps (RGB-D scans, generated
    scenes; the datamanager's ``load_depth`` must be on). Not in the paper (0 = off): it turns the fog that an RGB loss
    leaves in a room into surfaces within a few hundred steps."""
    depth_loss_type: Literal["ds_nerf", "urf"] = "ds_nerf"
    """nerfstudio's depth losses: DS-NeRF (weights close to the measured depth) or Urban Radiance Fields (also empty
    space before it)."""
    depth_sigma: float = 0.02
    """Standard deviation of the measured depth, in scene units (the scene box spans [-1, 1])."""
    color_mlp_width: int = 128
    """Width of TensoRF's colour MLP (its default: 128)."""
    use_sh: bool = False
    """Decode colour with spherical harmonics of ``sh_levels`` bands instead of the MLP (TensoRF-SH; the appearance
    features are then the 3 × sh_levels² coefficients)."""
    sh_levels: int = 3
    bounded_semantics: bool = True
    """Render per-sample class probabilities (softmax before volume rendering, Sec. 3.3); False renders logits."""
    bounded_instances: bool = True
    """Render per-sample surrogate-id probabilities; False renders logits (softmax after rendering)."""
    stop_head_gradients: bool = True
    """Detach the rendering weights of both heads (semantic and instance): their losses never move the density."""
    use_segment_consistency: bool = True
    """Segment consistency loss L_con (Eq. 7)."""
    consistency_segments: Literal["all", "things"] = "all"
    """The 2D segments L_con makes consistent: every panoptic segment as in the paper (thing instances and one
    segment per stuff class), or thing instances only. A stuff segment spans a whole frame and absorbs the objects
    the 2D network missed and the strips its boundaries displaced, so its majority vote pushes those pixels to the
    stuff class even under a perfect model (demo scene: 5-37% of each thing class's pixels, against 0-4% inside
    thing segments); the paper's motivation, one object labelled two ways across views, concerns thing segments."""
    use_label_probabilities: bool = True
    """Train on the label files' class distributions and confidences (TTA, Sec. 3.1); False: one-hot of their classes
    with confidence 1. The labels themselves are unchanged (single-pass labels come from ``plift-labels --no-tta``)."""
    stop_semantic_gradients: Optional[bool] = None
    """Deprecated name of ``stop_head_gradients`` (read for one more release)."""
    use_tta_confidence: Optional[bool] = None
    """Deprecated name of ``use_label_probabilities`` (read for one more release)."""
    semantic_loss_mult: float = 1.0
    instance_loss_mult: float = 1.0
    consistency_loss_mult: float = 1.35
    instance_loss_start_step: int = 1000
    """Instance and consistency losses (and R_I rays) start here, after geometry has settled."""
    consistency_loss_start_step: Optional[int] = None
    """L_con starts here instead (None: with the instance loss). Its target is the majority of the model's own
    predictions, so starting it before the semantic field is accurate locks small classes into their neighbours."""
    min_instance_fraction: float = 0.001
    """In a rendered image (viewer, ns-render, evaluation), a thing class's surrogate id covering fewer than this
    fraction of the image's pixels is merged into the same class's larger ids (:mod:`fragments`; 0 = off, the
    paper's plain argmax). Not in the paper: its slivers at object boundaries each count as a false positive."""
    head_weight_threshold: float = 1e-4
    """Evaluate the semantic/instance heads only on samples whose rendering weight exceeds this (0: all samples)."""
    render_shading_samples: int = 0
    """When rendering (viewer, ns-render, evaluation; never in training): evaluate colour and both heads at this many
    points per ray, drawn at evenly spaced quantiles of the ray's weight distribution over the fine samples, each
    carrying 1/n of the ray's opacity (systematic resampling), instead of at every fine sample (0 = every sample).
    Depth and opacity still use every fine sample. On a field of surfaces most of a ray's weight sits on a few
    neighbouring samples, so a few quantiles reproduce the maps at a fraction of the cost."""
    viewer_merge_cells: float = 2.0
    """In the viewer only (ns-render and evaluation shade every quantile sample): a ray whose quantile samples all
    lie within this many grid cells sees one surface, and is shaded once, at their mean distance (0 = off)."""
    viewer_fill_stride: int = 4
    """In the viewer only: render every n-th pixel in both directions first (anchors; a power of 2), then halve the
    spacing step by step, rendering the pixels between anchors only where the anchors disagree and interpolating
    their outputs elsewhere (0 or 1 = off; see ``filled_frames``)."""
    viewer_fill_min_side: int = 128
    """Smaller frames (the viewer's while the camera moves) use a smaller stride, keeping at least this many anchors
    along the longer side."""
    viewer_fill_depth_cells: float = 2.0
    """Anchors whose depths differ by more than this many grid cells see different surfaces."""
    viewer_fill_tolerance: float = 0.1
    """Anchors whose colour or opacity differ by more than this (in [0, 1]) disagree."""
    render_density_volume: bool = True
    """When rendering: sum the density grid's VM components once into a dense R³ volume and look density up there
    (one trilinear lookup per sample, the same values: see ``PanopticField.density_volume``) instead of evaluating
    the VM factors at every sample; summed again when the density parameters change. Never in training. The
    occupancy grid is then not needed (a lookup in it costs as much)."""
    render_guide_stride: int = 4
    """Whole-image renders (viewer, ns-render, evaluation; never training): a density pre-pass on every n-th pixel
    in both directions; pixels whose four surrounding pre-pass rays see one surface sample only the interval those
    rays span, skipping the uniform density pass and PDF sampling (0 = off; see ``guided_sampling``)."""
    render_guide_tail: float = 0.02
    """Share of a pre-pass ray's opacity left outside its interval at either end."""
    render_guide_margin: float = 2.0
    """Grid cells added to a guided pixel's interval at either end."""
    render_guide_max_spacing: float = 2.0 / 3.0
    """Guided pixels space their ``num_samples`` fine samples at most this many grid cells apart: a longer interval
    (with the margins; silhouettes, fog) is sampled as usual (small variant: 24 samples, intervals up to 16 cells)."""
    occupancy_resolution: int = 64
    """Cells per axis of the occupancy grid that lets the density-only pass skip empty space (0 = off)."""
    occupancy_threshold: float = 0.01
    """A cell is empty while its density × the coarse sample spacing stays below this (about 1% opacity)."""
    occupancy_in_training: bool = False
    """Skip empty space in training too (from ``occupancy_start_step``, grid re-measured every
    ``occupancy_update_every`` steps with a decaying maximum); off: only rendering (viewer, ns-render, eval) skips."""
    occupancy_start_step: int = 500
    occupancy_update_every: int = 16
    near_plane: float = 0.01
    """Rays start this far from the camera (normalised scene units)."""
    background_color: str = "black"
    """Colour behind the last sample (nerfstudio's TensoRF: white). A room has no background: with white, fog of
    semi-transparent samples reproduces light walls, and the field stays foggy (every sample occupied, blurry class
    boundaries); black makes every ray's colour come from the scene. Demo scene, 1000 steps: mIoU 42.7 → 67.5,
    PQ^scene 21.4 → 47.9, PSNR 24.2 → 26.1 (scripts/reports/2026-12-01-speed-fog.md)."""

    def check(self) -> None:
        """Move deprecated flags to their new names (with a note) and reject settings that cannot take effect
        (raises :class:`PliftConfigError`)."""
        for old, new in DEPRECATED_FLAGS.items():
            value = getattr(self, old)
            if value is not None:
                CONSOLE.print(
                    f"[yellow]note:[/] --pipeline.model.{old.replace('_', '-')} is deprecated; it now reads "
                    f"--pipeline.model.{new.replace('_', '-')} (the old name goes in the next release)."
                )
                setattr(self, new, value)
                setattr(self, old, None)
        start = self.consistency_loss_start_step
        if self.use_segment_consistency and start is not None and start < self.instance_loss_start_step:
            raise PliftConfigError(
                f"--pipeline.model.consistency-loss-start-step {start} is earlier than "
                f"--pipeline.model.instance-loss-start-step {self.instance_loss_start_step}: the segment consistency "
                "loss uses the instance rays R_I, which are sampled only from the instance-loss start. Set it to "
                f"{self.instance_loss_start_step} or later, or leave it unset to start with the instance loss."
            )


class PanopticLiftingModel(TensoRFModel):
    """Panoptic radiance field: colour, density, class distributions and surrogate instance ids."""

    config: PanopticLiftingModelConfig
    field: PanopticField

    def __init__(self, config: PanopticLiftingModelConfig, metadata: Dict, **kwargs) -> None:
        config.check()
        self.class_set: ClassSet = metadata["class_set"]
        self.step = 0
        super().__init__(config=config, metadata=metadata, **kwargs)

    # ---------------------------------------------------------------- modules
    def populate_modules(self) -> None:
        """nerfstudio's TensoRF modules (samplers, renderers, losses, metrics, camera optimiser), with our field,
        expected depth and near plane in place of its own; LPIPS is left out (building it downloads weights)."""
        with torch.random.fork_rng(devices=[]), _without_lpips():  # its throwaway field must not move the seed
            super().populate_modules()
        del self.lpips
        cfg = self.config
        self.field = PanopticField(
            self.scene_box.aabb,
            num_classes=self.class_set.num_classes,
            num_instances=cfg.num_surrogate_ids,
            resolution=cfg.init_resolution,
            **{name: getattr(cfg, name) for name in PanopticField.OPTIONS},
        )
        self.renderer_depth = DepthRenderer(method="expected")
        self.collider = AABBBoxCollider(scene_box=self.scene_box, near_plane=cfg.near_plane)
        self.occupancy = (
            OccupancyGrid(self.scene_box.aabb, cfg.occupancy_resolution, cfg.occupancy_threshold)
            if cfg.occupancy_resolution > 0
            else None
        )

        thing = torch.tensor(self.class_set.isthing, dtype=torch.bool)
        self.register_buffer("thing_mask", thing, persistent=False)
        self.register_buffer("class_colors", torch.from_numpy(self.class_set.color_table()), persistent=False)
        classes, ids = np.meshgrid(np.arange(self.class_set.num_classes), np.arange(cfg.num_surrogate_ids), indexing="ij")
        palette = instance_colors(classes, ids + 1)  # surrogate id j is rendered as instance j + 1
        self.register_buffer("instance_palette", torch.from_numpy(palette), persistent=False)
        self.register_buffer("stuff_colors", torch.from_numpy(dim_colors(self.class_set.color_table())), persistent=False)
        self.panoptic_gui = PanopticViewerGUI(self)  # viewer controls: legend, class filter, pick / hide / delete

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = {
            "fields": list(self.field.mlp_head.parameters())
            + list(self.field.B.parameters())
            + list(self.field.field_output_rgb.parameters()),
            "heads": list(self.field.semantic_mlp.parameters()) + list(self.field.instance_mlp.parameters()),
            "encodings": list(self.field.color_encoding.parameters())
            + list(self.field.density_encoding.parameters())
            + (list(self.field.head_grid.parameters()) if self.field.head_grid is not None else []),
        }
        self.camera_optimizer.get_param_groups(param_groups=groups)
        return groups

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        callbacks = super().get_training_callbacks(training_callback_attributes)
        pipeline = training_callback_attributes.pipeline
        datamanager = getattr(pipeline, "datamanager", None)
        if datamanager is not None and hasattr(datamanager, "instance_rays_from_step"):
            datamanager.instance_rays_from_step = self.config.instance_loss_start_step

        def set_step(step: int) -> None:
            self.step = step

        callbacks.append(
            TrainingCallback(where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], update_every_num_iters=1, func=set_step)
        )
        if self.occupancy is not None and self.config.occupancy_in_training:

            def update_occupancy(step: int) -> None:
                if step >= self.config.occupancy_start_step - 1:
                    self.occupancy.update(self._density_at, self._coarse_step(), decay=0.95)  # type: ignore[union-attr]
                    self.occupancy.source = ("training", self.field)  # type: ignore[union-attr]

            callbacks.append(
                TrainingCallback(
                    where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION],
                    update_every_num_iters=self.config.occupancy_update_every,
                    func=update_occupancy,
                )
            )
        return callbacks

    # ---------------------------------------------------------------- empty-space skipping
    def _density_at(self, positions: Float[Tensor, "M 3"]) -> Float[Tensor, " M"]:
        return self.field.get_density(samples_at(positions)).reshape(-1)

    def _coarse_step(self) -> float:
        """The largest spacing of the density-only samples: the scene box's diagonal over their number."""
        extent = self.scene_box.aabb[1] - self.scene_box.aabb[0]
        return float(extent.norm()) / self.config.num_uniform_samples

    def _occupancy_for(self) -> Optional[OccupancyGrid]:
        """The grid the density-only pass may use now: in training once it is measured; when rendering, measured
        again whenever the field (edits included) or the training step changed since it was last measured."""
        grid = self.occupancy
        if grid is None:
            return None
        if self.training:
            ok = self.config.occupancy_in_training and self.step >= self.config.occupancy_start_step
            return grid if ok and grid.source is not None else None
        training_grid = grid.source is not None and grid.source[0] == "training" and grid.source[1] is self.field
        if not training_grid and (grid.source is None or grid.source[0] is not self.field or grid.source[1] != self.step):
            grid.update(self._density_at, self._coarse_step(), decay=0.0, jitter=False)
            grid.source = (self.field, self.step)
        return grid

    def _coarse_density(self, coarse: RaySamples) -> Float[Tensor, "N S 1"]:
        """Density of the density-only samples: everywhere when rendering through the density volume, else only in
        occupied cells (0 elsewhere)."""
        grid = None if not self.training and self.field.render_density_volume else self._occupancy_for()
        if grid is None:
            return self.field.get_density(coarse)
        occupied = grid.lookup(coarse.frustums.get_positions())
        density = coarse.frustums.starts.new_zeros((*occupied.shape, 1))
        if occupied.any():
            density[occupied] = self.field.get_density(coarse[occupied].reshape((-1, 1))).reshape(-1, 1)
        return density

    # ---------------------------------------------------------------- rendering
    def _significant(self, weights: Float[Tensor, "N S 1"]) -> Bool[Tensor, "N S"]:
        """Samples whose rendering weight exceeds ``head_weight_threshold``: the only ones worth evaluating."""
        w = weights[..., 0].detach()
        threshold = self.config.head_weight_threshold
        return w > threshold if threshold > 0 else torch.ones_like(w, dtype=torch.bool)

    @staticmethod
    def _quantile_samples(weights: Float[Tensor, "N S 1"], n: int) -> Tuple[Int[Tensor, "N n"], Float[Tensor, "N 1"]]:
        """Systematic resampling: the indices of the samples under the quantiles (j + ½)/n of each ray's weight
        distribution, and the share of the ray's opacity each quantile carries (1/n of it)."""
        w = weights[..., 0]
        opacity = w.sum(dim=-1, keepdim=True)
        cdf = torch.cumsum(w, dim=-1) / opacity.clamp(min=1e-10)
        quantiles = (torch.arange(n, device=w.device, dtype=w.dtype) + 0.5) / n
        index = torch.searchsorted(cdf.contiguous(), quantiles.expand(len(w), n).contiguous()).clamp(max=w.shape[-1] - 1)
        return index, opacity / n

    @staticmethod
    def _scatter(values: Float[Tensor, "M D"], keep: Bool[Tensor, "N S"]) -> Float[Tensor, "N S D"]:
        """Per-sample values of the kept samples, zero elsewhere."""
        dense = values.new_zeros((*keep.shape, values.shape[-1]))
        dense[keep] = values
        return dense

    def _render_head(
        self, logits: Float[Tensor, "M D"], keep: Optional[Bool[Tensor, "N S"]], weights: Float[Tensor, "N S 1"],
        bounded: bool,
    ) -> Float[Tensor, "N D"]:
        """Σ_i w_i softmax(f(x_i)) (bounded field) or Σ_i w_i f(x_i) (logits) over the kept samples of each ray
        (``keep`` None: ``logits`` holds every sample's, shape N S D)."""
        values = torch.softmax(logits, dim=-1) if bounded else logits
        return (weights * (values if keep is None else self._scatter(values, keep))).sum(dim=-2)

    def _fine_samples(self, ray_bundle: RayBundle) -> Tuple[RaySamples, Float[Tensor, "N S 1"]]:
        """TensoRF's sampling: a density-only pass over uniform samples places the fine samples (PDF sampling);
        the fine samples and their rendering weights."""
        with torch.no_grad():
            coarse = self.sampler_uniform(ray_bundle)
            coarse_weights = coarse.get_weights(self._coarse_density(coarse))
        ray_samples = self.sampler_pdf(ray_bundle, coarse, coarse_weights)
        return ray_samples, ray_samples.get_weights(self.field.get_density(ray_samples))

    def _samples(self, ray_bundle: RayBundle) -> Tuple[RaySamples, Float[Tensor, "N S 1"]]:
        """Fine samples and weights: over the guiding interval for the rays that carry one (whole-image renders, see
        :mod:`guided_sampling`), by :meth:`_fine_samples` for the others."""
        mask = None if self.training else guided_sampling.guided(ray_bundle)
        if mask is None or not mask.any():
            return self._fine_samples(ray_bundle)
        near = guided_sampling.interval_samples(ray_bundle[mask], self.config.num_samples)
        near_weights = near.get_weights(self.field.get_density(near))
        if mask.all():
            return near, near_weights
        far, far_weights = self._fine_samples(ray_bundle[~mask])
        starts = near.frustums.starts.new_empty((len(mask), self.config.num_samples, 1))
        ends, weights = torch.empty_like(starts), torch.empty_like(starts)
        for target, a, b in ((starts, near.frustums.starts, far.frustums.starts),
                             (ends, near.frustums.ends, far.frustums.ends), (weights, near_weights, far_weights)):
            target[mask], target[~mask] = a, b
        return ray_bundle.get_ray_samples(bin_starts=starts, bin_ends=ends), weights

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        if self.training:
            self.camera_optimizer.apply_to_raybundle(ray_bundle)
        ray_samples, weights = self._samples(ray_bundle)
        n_shade = self.config.render_shading_samples
        if self.training or n_shade <= 0:
            outputs = self._shade_samples(ray_bundle, ray_samples, weights)
        else:
            outputs = self._shade_quantiles(ray_samples, weights, n_shade)
        outputs["accumulation"] = self.renderer_accumulation(weights)
        outputs["depth"] = self.renderer_depth(weights, ray_samples)
        if self.training and (self.config.distortion_loss_mult > 0 or self.config.depth_loss_mult > 0):
            outputs["weights"], outputs["ray_samples"] = weights, ray_samples
            outputs["directions_norm"] = (ray_bundle.metadata or {}).get("directions_norm")
        if not self.training:
            outputs.update(self.colormaps(outputs["semantics"], outputs["instance"]))
        return outputs

    def _shade_samples(self, ray_bundle: RayBundle, ray_samples: RaySamples, weights: Float[Tensor, "N S 1"]) -> Dict[str, Tensor]:
        """Colour, class distribution and surrogate-id distribution rendered over every fine sample that carries
        weight (training: the instance head only on R_I rays)."""
        keep = self._significant(weights)
        # R_I rays (training) or every ray (rendering) need the instance head; R_S rays only colour and classes.
        with_instance: Optional[Tensor] = None
        if self.training:
            instance_ray = (ray_bundle.metadata or {}).get("instance_ray")
            with_instance = keep & instance_ray[:, :1] if instance_ray is not None else torch.zeros_like(keep)
        instance_keep = keep if with_instance is None else with_instance
        num_classes, num_ids = self.class_set.num_classes, self.config.num_surrogate_ids
        if keep.any():
            samples = self.field.sample_outputs(
                ray_samples[keep], None if with_instance is None else with_instance[keep]
            )
        else:  # no sample carries weight (e.g. a view of empty space)
            empty = weights.new_zeros((0, 1))
            samples = {"rgb": empty.expand(0, 3), "semantics": empty.expand(0, num_classes),
                       "instance": empty.expand(0, num_ids)}
        seg_weights = weights.detach() if self.config.stop_head_gradients else weights
        return {
            "rgb": self.renderer_rgb(rgb=self._scatter(samples["rgb"], keep), weights=weights),
            "semantics": self._render_head(samples["semantics"], keep, seg_weights, self.config.bounded_semantics),
            "instance": self._render_head(samples["instance"], instance_keep, seg_weights, self.config.bounded_instances),
        }

    def _shade_quantiles(self, ray_samples: RaySamples, weights: Float[Tensor, "N S 1"], n: int) -> Dict[str, Tensor]:
        """Rendering only: colour and both heads evaluated at ``n`` quantile samples per ray, each weighted by its
        share of the ray's opacity (a share below ``head_weight_threshold`` counts 0, as every-sample shading drops
        such samples). In the viewer, rays whose quantile samples lie within ``viewer_merge_cells`` grid cells are
        shaded once (:meth:`_shade_merged`)."""
        index, share = self._quantile_samples(weights, n)
        share = torch.where(share > self.config.head_weight_threshold, share, torch.zeros_like(share))
        if self.config.viewer_merge_cells > 0 and in_viewer_render_thread():
            return self._shade_merged(ray_samples, index, share, self.config.viewer_merge_cells * self._grid_cell())
        positions = ray_samples.frustums.get_positions().gather(1, index[..., None].expand(-1, -1, 3))
        directions = ray_samples.frustums.directions[:, :1].expand(-1, n, -1)
        values = self.field.sample_outputs(samples_at(positions.reshape(-1, 3), directions.reshape(-1, 3)))
        w = share[:, None, :].expand(-1, n, 1)
        rows = (len(index), n, -1)
        return {
            "rgb": self.renderer_rgb(rgb=values["rgb"].reshape(rows), weights=w),
            "semantics": self._render_head(values["semantics"].reshape(rows), None, w, self.config.bounded_semantics),
            "instance": self._render_head(values["instance"].reshape(rows), None, w, self.config.bounded_instances),
        }

    def _shade_merged(
        self, ray_samples: RaySamples, index: Int[Tensor, "N n"], share: Float[Tensor, "N 1"], distance: float
    ) -> Dict[str, Tensor]:
        """Quantile shading where a ray's quantile samples all lie within ``distance`` of each other (one surface):
        such a ray is shaded once, at their mean distance, with the ray's whole opacity; other rays at every quantile
        sample."""
        frustums = ray_samples.frustums
        n = index.shape[-1]
        mid = (frustums.starts[..., 0].gather(1, index) + frustums.ends[..., 0].gather(1, index)) / 2
        single = mid[:, -1] - mid[:, 0] <= distance
        groups = [(single, mid[single].mean(dim=-1, keepdim=True), share[single] * n), (~single, mid[~single], share[~single])]
        origins, directions = frustums.origins[:, 0], frustums.directions[:, 0]
        points = [origins[rows, None] + directions[rows, None] * t[..., None] for rows, t, _ in groups]
        values = self.field.sample_outputs(samples_at(
            torch.cat([p.reshape(-1, 3) for p in points]),
            torch.cat([directions[rows, None].expand_as(p).reshape(-1, 3) for (rows, _, _), p in zip(groups, points)]),
        ))
        sizes = [p.shape[0] * p.shape[1] for p in points]
        outputs: Dict[str, Tensor] = {}
        for key in ("rgb", "semantics", "instance"):
            flat = values[key].reshape(sum(sizes), values[key].shape[-1])
            outputs[key] = flat.new_zeros((len(index), flat.shape[-1]))
            for (rows, t, w), part in zip(groups, flat.split(sizes)):
                if len(t) == 0:
                    continue
                part = part.reshape(t.shape[0], t.shape[1], flat.shape[-1])
                w = w[:, None, :].expand(-1, t.shape[1], 1)
                if key == "rgb":
                    outputs[key][rows] = self.renderer_rgb(rgb=part, weights=w)
                else:
                    bounded = self.config.bounded_semantics if key == "semantics" else self.config.bounded_instances
                    outputs[key][rows] = self._render_head(part, None, w, bounded)
        return outputs

    def _grid_cell(self) -> float:
        """Edge of one cell of the density grid at its current resolution, in scene units (the longest axis)."""
        extent = self.scene_box.aabb[1] - self.scene_box.aabb[0]
        return float(extent.max()) / self.field.density_encoding.plane_coef.shape[-1]

    # ---------------------------------------------------------------- inference rule
    def panoptic_labels(
        self, semantics: Float[Tensor, "*bs C"], instance: Float[Tensor, "*bs K"]
    ) -> Tuple[Int[Tensor, " *bs"], Int[Tensor, " *bs"]]:
        """Class = argmax κ_r; thing → surrogate id argmax π_r + 1 (so 0 stays 'no instance'); stuff → 0. Given an
        image (H, W, ·), a thing class's ids below ``min_instance_fraction`` of it are merged (:mod:`fragments`)."""
        sem = semantics.argmax(dim=-1)
        inst = instance.argmax(dim=-1) + 1
        inst = torch.where(self.thing_mask[sem], inst, torch.zeros_like(inst))
        if sem.dim() == 2:
            min_pixels = self.config.min_instance_fraction * sem.numel()
            inst = merge_instance_fragments(sem, inst, instance, self.thing_mask, min_pixels)
        return sem, inst

    def colormaps(self, semantics: Tensor, instance: Tensor) -> Dict[str, Tensor]:
        """Float 3-channel maps: class colours, and per-3D-instance colours (stuff shown darkened)."""
        sem, inst = self.panoptic_labels(semantics, instance)
        sem_rgb = self.class_colors[sem]
        thing = self.thing_mask[sem]
        inst_rgb = torch.where(thing[..., None], self.instance_palette[sem, (inst - 1).clamp(min=0)], self.stuff_colors[sem])
        return {"semantics_colormap": sem_rgb, "instance_colormap": inst_rgb}

    @torch.no_grad()
    def get_outputs_for_camera_ray_bundle(self, camera_ray_bundle: RayBundle) -> Dict[str, Tensor]:
        stride = 1
        if len(camera_ray_bundle.shape) == 2 and in_viewer_render_thread():
            stride = filled_frames.anchor_stride(max(camera_ray_bundle.shape), self.config.viewer_fill_stride,
                                                 self.config.viewer_fill_min_side)
        outputs = self._render_filled(camera_ray_bundle, stride) if stride > 1 else self._render_image(camera_ray_bundle)
        if len(camera_ray_bundle.shape) == 2 and self.config.min_instance_fraction > 0:  # the whole image's ids
            outputs.update(self.colormaps(outputs["semantics"], outputs["instance"]))
        outputs["panoptic"] = panoptic_overlay(outputs["rgb"], outputs["semantics_colormap"], outputs["instance_colormap"])
        return self.panoptic_gui.apply(outputs)

    def _render_image(self, camera_ray_bundle: RayBundle) -> Dict[str, Tensor]:
        """Every pixel rendered: depth-guided (:meth:`_render_guided`) for an image, else nerfstudio's chunks."""
        if self.config.render_guide_stride > 0 and len(camera_ray_bundle.shape) == 2:
            return self._render_guided(self._with_guiding_intervals(camera_ray_bundle, self.config.render_guide_stride))
        return super().get_outputs_for_camera_ray_bundle(camera_ray_bundle)

    def _render_filled(self, camera_ray_bundle: RayBundle, stride: int) -> Dict[str, Tensor]:
        """A viewer frame filled in from every ``stride``-th pixel (:meth:`_fill`), guided by one density pre-pass."""
        cfg = self.config
        render = super().get_outputs_for_camera_ray_bundle
        if cfg.render_guide_stride > 0:
            camera_ray_bundle = self._with_guiding_intervals(camera_ray_bundle, 2 * cfg.render_guide_stride)
            render = self._render_guided
        return self._fill(camera_ray_bundle, stride, render)

    def _fill(self, camera_ray_bundle: RayBundle, stride: int, render: Callable[[RayBundle], Dict[str, Tensor]]) -> Dict[str, Tensor]:
        """Every other pixel in both directions (anchors) filled in from every ``stride``-th (recursively; ``render``
        alone below 2), then the pixels between the anchors interpolated where the anchors agree and rendered where
        they do not (:mod:`filled_frames`)."""
        if stride < 2:
            return render(camera_ray_bundle)
        cfg = self.config
        height, width = camera_ray_bundle.shape
        device = camera_ray_bundle.origins.device
        rows, cols = (pixels.to(device) for pixels in guided_sampling.pre_pass_pixels(height, width, 2))
        anchors = self._fill(camera_ray_bundle[rows][:, cols], stride // 2, render)
        sem, inst = self.panoptic_labels(anchors["semantics"], anchors["instance"])
        brackets = guided_sampling.Brackets.of(height, width, 2, sem.device)
        missing = filled_frames.to_render(
            anchors, sem * (cfg.num_surrogate_ids + 1) + inst, brackets,
            depth_tolerance=cfg.viewer_fill_depth_cells * self._grid_cell(), value_tolerance=cfg.viewer_fill_tolerance,
        )
        outputs = {
            name: (filled_frames.nearest if name in LABEL_COLOURS else filled_frames.interpolate)(value, brackets)
            for name, value in anchors.items()
        }
        pixels = missing.reshape(-1).nonzero()[:, 0]
        if len(pixels):
            rendered = render(camera_ray_bundle.flatten()[pixels.to(device)].reshape((len(pixels), 1)))
            for name, value in outputs.items():
                value.view(height * width, -1)[pixels] = rendered[name].view(len(pixels), -1).to(value)
        return outputs

    def _render_guided(self, camera_ray_bundle: RayBundle) -> Dict[str, Tensor]:
        """nerfstudio's chunked rendering of an image, with the guided rays first and the others after them, so that
        (all but one) chunks take one sampling path; outputs back in pixel order."""
        height, width = camera_ray_bundle.shape
        flat = camera_ray_bundle.flatten()
        order = torch.argsort(torch.isnan(flat.metadata[guided_sampling.INTERVAL_KEY][:, 0]).to(torch.uint8), stable=True)
        outputs = super().get_outputs_for_camera_ray_bundle(flat[order].reshape((height, width)))
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        return {name: value.view(height * width, -1)[inverse.to(value.device)].view(height, width, -1) for name, value in outputs.items()}

    def _with_guiding_intervals(self, camera_ray_bundle: RayBundle, stride: int) -> RayBundle:
        """The image's rays with each pixel's guiding interval from a density pre-pass on every ``stride``-th pixel
        (:mod:`guided_sampling`)."""
        cfg = self.config
        height, width = camera_ray_bundle.shape
        device = camera_ray_bundle.origins.device
        rows, cols = (pixels.to(device) for pixels in guided_sampling.pre_pass_pixels(height, width, stride))
        flat = camera_ray_bundle[rows][:, cols].flatten()
        intervals = []
        for start in range(0, len(flat), cfg.eval_num_rays_per_chunk):
            chunk = flat[start : start + cfg.eval_num_rays_per_chunk].to(self.device)
            chunk = self.collider(chunk) if self.collider is not None else chunk
            intervals.append(guided_sampling.weight_interval(*self._fine_samples(chunk), tail=cfg.render_guide_tail, min_opacity=0.5))
        voxel = self._grid_cell()
        interval = guided_sampling.bracket_intervals(
            torch.cat(intervals).view(len(rows), len(cols), 2), height, width, stride,
            margin=cfg.render_guide_margin * voxel, max_length=cfg.render_guide_max_spacing * cfg.num_samples * voxel,
        )
        metadata = {**(camera_ray_bundle.metadata or {}), guided_sampling.INTERVAL_KEY: interval.to(device)}
        return dataclasses.replace(camera_ray_bundle, metadata=metadata)

    # ---------------------------------------------------------------- losses
    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        cfg = self.config
        n = batch.get("num_rays_semantic", len(outputs["rgb"]))
        sem_labels = batch["semantics"]
        valid = sem_labels >= 0
        if cfg.use_label_probabilities and "probability" in batch:
            target, confidence = batch["probability"], batch["confidence"]
        else:
            target = torch.nn.functional.one_hot(sem_labels.clamp(min=0), self.class_set.num_classes).float()
            confidence = valid.float()
        from_logits = not cfg.bounded_semantics
        loss_dict["semantic_loss"] = cfg.semantic_loss_mult * losses.semantic_loss(
            outputs["semantics"][:n], target[:n], confidence[:n], valid[:n], from_logits=from_logits
        )
        if "weights" in outputs:
            loss_dict["distortion_loss"] = cfg.distortion_loss_mult * distortion_loss(
                [outputs["weights"]], [outputs["ray_samples"]]
            )
        if cfg.depth_loss_mult > 0 and "depth" in batch and outputs.get("directions_norm") is not None:
            loss_dict["depth_loss"] = cfg.depth_loss_mult * depth_loss(
                outputs["weights"], outputs["ray_samples"], batch["depth"], outputs["depth"],
                # DS-NeRF's sigma is a variance, URF's a standard deviation
                torch.tensor(cfg.depth_sigma**2 if cfg.depth_loss_type == "ds_nerf" else cfg.depth_sigma),
                outputs["directions_norm"],
                is_euclidean=False, depth_loss_type=DepthLossType[cfg.depth_loss_type.upper()],
            )
        if self.training and self.step >= cfg.instance_loss_start_step and len(outputs["rgb"]) > n:
            loss_dict["instance_loss"] = cfg.instance_loss_mult * losses.instance_loss(
                outputs["instance"][n:], batch["instance"][n:], confidence[n:], from_logits=not cfg.bounded_instances
            )
            if cfg.use_segment_consistency and self.step >= (cfg.consistency_loss_start_step or 0):
                segments = losses.panoptic_segment_ids(sem_labels[n:], batch["instance"][n:], self.thing_mask, -1)
                batch_rays = segments >= 0  # |R| of Eq. 7: every ray in a panoptic segment
                if cfg.consistency_segments == "things":
                    segments = losses.panoptic_segment_ids(
                        sem_labels[n:], batch["instance"][n:], self.thing_mask, -1, stuff=False
                    )
                loss_dict["consistency_loss"] = cfg.consistency_loss_mult * losses.segment_consistency_loss(
                    outputs["semantics"][n:], segments, confidence[n:], from_logits=from_logits, batch_rays=batch_rays
                )
        return loss_dict

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        metrics = {"psnr": self.psnr(outputs["rgb"], batch["image"].to(outputs["rgb"].device))}
        sem = batch["semantics"]
        valid = sem >= 0
        if valid.any():
            pred = outputs["semantics"].argmax(dim=-1)
            metrics["label_agreement"] = (pred[valid] == sem[valid]).float().mean()
        self.camera_optimizer.get_metrics_dict(metrics)
        return metrics

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        image = batch["image"].to(outputs["rgb"].device)[..., :3]
        rgb = outputs["rgb"]
        ours = torch.moveaxis(rgb, -1, 0)[None]
        gt = torch.moveaxis(image, -1, 0)[None]
        metrics: Dict[str, float] = {
            "psnr": float(self.psnr(ours, gt).item()),
            "ssim": float(self.ssim(ours, gt).item()),  # type: ignore[union-attr]
        }
        depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        images = {
            "img": torch.cat([image, rgb], dim=1),
            "depth": depth,
            "semantics": outputs["semantics_colormap"],
            "instances": outputs["instance_colormap"],
        }
        if "gt_semantics" in batch:
            from plift_ns.eval.image_metrics import frame_metrics

            sem, inst = self.panoptic_labels(outputs["semantics"], outputs["instance"])
            metrics.update(frame_metrics(sem, inst, batch["gt_semantics"], batch["gt_instance"], self.class_set))
            gt_sem = batch["gt_semantics"].to(sem.device)
            images["semantics"] = torch.cat([self.class_colors[gt_sem], outputs["semantics_colormap"]], dim=1)
        return metrics, images


class NoLPIPS(torch.nn.Module):
    """Stand-in for torchmetrics' LPIPS, which downloads a network when built: no weights, scores 0."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.zeros((), device=a.device)


@contextlib.contextmanager
def _without_lpips() -> Iterator[None]:
    """While nerfstudio's TensoRF builds its modules, LPIPS is a placeholder (the real one downloads weights)."""
    with mock.patch("torchmetrics.image.lpip.LearnedPerceptualImagePatchSimilarity", NoLPIPS):
        yield
