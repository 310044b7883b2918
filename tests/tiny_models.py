"""A tiny Panoptic Lifting model and ray bundles for model-level tests (helpers, not tests)."""

from __future__ import annotations

from typing import Dict

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.model_components.ray_samplers import PDFSampler, UniformSampler

from plift_ns.data.classes import load_class_set
from plift_ns.models.panoptic_lifting import PanopticLiftingModel, PanopticLiftingModelConfig

CLASSES = load_class_set("scannet21")


def tiny_model(**overrides) -> PanopticLiftingModel:
    torch.manual_seed(0)
    config = PanopticLiftingModelConfig(
        init_resolution=16, final_resolution=24, upsampling_iters=(5,), num_uniform_samples=32, num_samples=16,
        num_den_components=4, num_color_components=8, semantic_layers=2, semantic_width=32, instance_layers=2,
        instance_width=32, num_surrogate_ids=6, **overrides,
    )
    box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    model = config.setup(scene_box=box, num_train_data=4, metadata={"class_set": CLASSES})
    with torch.no_grad():  # a denser start so that rays accumulate noticeable weight
        model.field.density_encoding.plane_coef.mul_(8.0).abs_()
        model.field.density_encoding.line_coef.mul_(8.0).abs_()
    return model


def rays(n: int = 64, instance_from: int = 32) -> RayBundle:
    g = torch.Generator().manual_seed(1)
    origins = (torch.rand(n, 3, generator=g) - 0.5) * 0.5
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    bundle = RayBundle(
        origins=origins, directions=directions, pixel_area=torch.full((n, 1), 1e-4),
        camera_indices=torch.zeros((n, 1), dtype=torch.long),
    )
    flags = torch.zeros((n, 1), dtype=torch.bool)
    flags[instance_from:] = True
    bundle.metadata["instance_ray"] = flags
    return bundle


def forward(model: PanopticLiftingModel, bundle: RayBundle) -> Dict[str, torch.Tensor]:
    return model(bundle)


def two_walls(dense: bool = False, **overrides):
    """A tiny model whose density is a far wall (z = -0.75) across the view and a near one (z = -0.25) on its
    left half (x < 0), seen by a camera at the origin looking down -z; ``dense``: 16 times the samples per ray (a
    reference render)."""
    model = tiny_model(head_weight_threshold=0.0, **overrides)
    if dense:
        model.sampler_uniform = UniformSampler(num_samples=16 * model.config.num_uniform_samples, single_jitter=True)
        model.sampler_pdf = PDFSampler(num_samples=16 * model.config.num_samples, single_jitter=True, include_original=False)
    encoding = model.field.density_encoding
    res = encoding.plane_coef.shape[-1]
    axis = (torch.arange(res) + 0.0) / (res - 1) * 2 - 1  # vertex positions in [-1, 1]
    with torch.no_grad():
        encoding.plane_coef.zero_()
        encoding.line_coef.zero_()
        # plane 0 spans (y, x) and line 0 spans z (see PanopticField.density_volume)
        encoding.plane_coef[0, 0] = 1.0
        encoding.line_coef[0, 0, (axis - -0.75).abs().argmin(), 0] = 60.0
        encoding.plane_coef[0, 1] = (axis < 0).float()[None, :].expand(res, res)
        encoding.line_coef[0, 1, (axis - -0.25).abs().argmin(), 0] = 200.0  # opaque: nothing of the far wall behind it
    model.eval()
    return model
