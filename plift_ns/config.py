"""Method specifications: ``panoptic-lifting`` (paper defaults) and ``panoptic-lifting-small`` (CPU-sized)."""

from __future__ import annotations

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from plift_ns.data.datamanager import PanopticDataManagerConfig
from plift_ns.devices import default_device
from plift_ns.models.panoptic_lifting import PanopticLiftingModelConfig
from plift_ns.pipeline import PanopticPipelineConfig
from plift_ns.trainer import LOCAL_HOST, PanopticTrainerConfig


def _optimizers(max_steps: int, grid_lr: float, head_lr: float = 5e-4) -> dict:
    def adam(lr: float, final: float) -> dict:
        return {
            "optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=final, max_steps=max_steps),
        }

    return {
        "fields": adam(1e-3, 1e-4),
        "heads": adam(head_lr, head_lr / 10),
        "encodings": adam(grid_lr, grid_lr / 10),
        "camera_opt": adam(1e-3, 1e-4),
    }


def panoptic_lifting_trainer(max_steps: int = 30000) -> TrainerConfig:
    """Paper defaults (supp. C.1): 128³→192³ grids, 16/48 components, 5×256 semantic MLP, K = 50, 2048 + 1024 rays."""
    return _trainer(
        "panoptic-lifting",
        max_steps,
        PanopticDataManagerConfig(rays_semantic=2048, rays_instance=1024),
        PanopticLiftingModelConfig(eval_num_rays_per_chunk=4096),
        _optimizers(max_steps, grid_lr=0.02),
        steps_per_eval_batch=500,
        steps_per_eval_image=2000,
        steps_per_save=2000,
    )


def panoptic_lifting_small_trainer(max_steps: int = 3000) -> TrainerConfig:
    """A CPU-sized variant for small scenes (the demo scene trains in minutes on 2 cores): smaller grids and samples,
    and heads that also read a small VM feature grid and TensoRF's appearance features (not in the paper) so they fit
    in thousands, not 100k+, iterations.

    The segment consistency loss is off here: its target is the majority of the model's own predictions, and in a
    run this short it starts while they are still wrong, which locked thin classes (door, shelves, curtain) into the
    wall. Measured on the demo scene, 1500 steps: mIoU 36.5 with it (from step 600) vs 54.2 without.

    Where the scene has depth maps (RGB-D scans, generated scenes), Urban Radiance Fields' depth loss is on (not in
    the paper): it empties the space in front of each measured surface, so the field is surfaces, not a fog, within
    a few hundred steps. Demo scene, 500 steps: PSNR 23.7 → 27.8, PQ^scene 24.2 → 58.3, mIoU 43.5 → 83.0; a scene with
    heavier label noise, 600 steps: 23.1 → 26.8, 18.0 → 49.7, 38.9 → 75.6; with sensor-like depth (noise, 35% holes,
    2-px misregistration) 26.6 / 55.9 / 80.7. Geometry then settles by step 200, so the grids upsample at steps
    200/300/400 and the instance losses start at 200 (demo scene, 500 steps: 29.0 / 75.4 / 86.0). Scenes without
    depth train without the loss (scripts/reports/2026-12-01-depth-supervision.md).

    Rendering (viewer, ns-render, evaluation) shades 4 quantile points per ray instead of every fine sample: demo
    scene, 500 steps, 512-px frame 23.6 → 8.7 s, test-view scores within 0.7 points."""
    return _trainer(
        "panoptic-lifting-small",
        max_steps,
        PanopticDataManagerConfig(
            rays_semantic=1024, rays_instance=512, eval_num_rays_per_batch=512, load_depth=True, class_balance=0.15
        ),
        PanopticLiftingModelConfig(
            init_resolution=64,
            final_resolution=128,
            upsampling_iters=(200, 300, 400),
            num_uniform_samples=64,
            num_samples=24,
            num_den_components=8,
            num_color_components=24,
            semantic_layers=2,
            semantic_width=64,
            instance_layers=2,
            instance_width=64,
            head_grid_resolution=128,
            head_grid_components=16,
            num_surrogate_ids=25,
            head_appearance=True,
            instance_loss_start_step=200,
            use_segment_consistency=False,
            depth_loss_mult=0.01,
            depth_loss_type="urf",
            render_shading_samples=4,
            eval_num_rays_per_chunk=4096,
        ),
        _optimizers(max_steps, grid_lr=0.02, head_lr=2e-3),
        steps_per_eval_batch=250,
        steps_per_eval_image=1000,
        steps_per_eval_all_images=0,
        steps_per_save=1000,
    )


def _trainer(
    method_name: str,
    max_steps: int,
    datamanager: PanopticDataManagerConfig,
    model: PanopticLiftingModelConfig,
    optimizers: dict,
    **schedule: int,
) -> TrainerConfig:
    """What both methods share (full precision, the default device, the viewer on localhost); ``schedule``: their
    eval/save intervals."""
    return PanopticTrainerConfig(
        method_name=method_name,
        max_num_iterations=max_steps,
        mixed_precision=False,
        machine=_machine(),
        pipeline=PanopticPipelineConfig(datamanager=datamanager, model=model),
        optimizers=optimizers,
        viewer=ViewerConfig(num_rays_per_chunk=4096, websocket_host=LOCAL_HOST),
        vis="viewer",
        **schedule,
    )


def _machine():
    from nerfstudio.configs.base_config import MachineConfig

    return MachineConfig(device_type=default_device().type)  # type: ignore[arg-type]


panoptic_lifting = MethodSpecification(
    config=panoptic_lifting_trainer(),
    description="Panoptic Lifting: lift noisy 2D panoptic labels into a 3D-consistent panoptic radiance field.",
)
panoptic_lifting_small = MethodSpecification(
    config=panoptic_lifting_small_trainer(),
    description="Panoptic Lifting, CPU-sized (small grids and heads) for small scenes and quick runs.",
)
