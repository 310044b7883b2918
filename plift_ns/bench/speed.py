"""Speed benchmark: plift-ns beside nerfstudio's stock ``tensorf`` and ``semantic-nerfw`` on the same scene and machine.

Every method runs in its own child process (so peak memory is its own), on the same scene, with the same timing code:
training iterations/s and rays/s (after warm-up; plift-ns with its instance and consistency losses on), the time to
render 2048 rays (the paper's Table 3 figure) and one full test view, and peak memory. LPIPS is stubbed (it would
download weights); stock methods use a VanillaDataManager (their ParallelDataManager spawns workers).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import torch

from plift_ns.checkpoints import allow_trusted_checkpoints

METHODS = ("panoptic-lifting-small", "panoptic-lifting", "tensorf", "semantic-nerfw")


@dataclass
class SpeedResult:
    method: str
    rays_per_step: int
    iters_per_s: float
    rays_per_s: float
    render_2048_ms: float
    render_view_s: float
    view_pixels: int
    peak_mem_mb: float
    device: str

    def as_dict(self) -> Dict[str, Any]:
        return dict(vars(self))


def stub_lpips() -> None:
    """Replace torchmetrics' LPIPS process-wide with the model's no-weights stand-in (stock methods build LPIPS too)."""
    import torchmetrics.image
    import torchmetrics.image.lpip as lpip

    from plift_ns.models.panoptic_lifting import NoLPIPS

    lpip.LearnedPerceptualImagePatchSimilarity = NoLPIPS  # type: ignore[misc]
    torchmetrics.image.LearnedPerceptualImagePatchSimilarity = NoLPIPS  # type: ignore[attr-defined]


def trainer_config(method: str, scene: Path, work: Path):
    """The method's own TrainerConfig, pointed at ``scene`` through the panoptic dataparser."""
    from nerfstudio.configs.method_configs import all_methods
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
    from nerfstudio.data.datasets.semantic_dataset import SemanticDataset

    from plift_ns.bench.adapters import SemanticAdapterDataParserConfig
    from plift_ns.data.dataparser import PanopticDataParserConfig

    config = all_methods[method]
    config.pipeline.datamanager.data = None
    if method == "tensorf":
        dm = config.pipeline.datamanager
        config.pipeline.datamanager = VanillaDataManagerConfig(
            dataparser=PanopticDataParserConfig(data=scene),
            train_num_rays_per_batch=dm.train_num_rays_per_batch,
            eval_num_rays_per_batch=dm.eval_num_rays_per_batch,
        )
    elif method == "semantic-nerfw":
        dm = config.pipeline.datamanager
        config.pipeline.datamanager = VanillaDataManagerConfig(
            _target=VanillaDataManager[SemanticDataset],
            dataparser=SemanticAdapterDataParserConfig(data=scene, cache_dir=work),
            train_num_rays_per_batch=dm.train_num_rays_per_batch,
            eval_num_rays_per_batch=dm.eval_num_rays_per_batch,
        )
    else:
        config.pipeline.datamanager.dataparser.data = scene
        config.pipeline.model.instance_loss_start_step = 0  # time the full objective, heads and all losses on
    return config


def _measure(method: str, scene: Path, work: Path, steps: int, warmup: int, device: str) -> Dict[str, Any]:
    stub_lpips()
    from nerfstudio.engine.optimizers import Optimizers

    allow_trusted_checkpoints()
    torch.manual_seed(0)
    config = trainer_config(method, scene, work)
    pipeline = config.pipeline.setup(device=device, test_mode="val")
    pipeline.train()
    optimizers = Optimizers(config.optimizers, pipeline.get_param_groups())
    dm = pipeline.datamanager
    rays_per_step = dm.get_train_rays_per_batch()

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    times: List[float] = []
    for step in range(warmup + steps):
        sync()
        start = time.perf_counter()
        _, loss_dict, _ = pipeline.get_train_loss_dict(step)
        optimizers.zero_grad_all()
        sum(loss_dict.values()).backward()  # type: ignore[union-attr]
        optimizers.optimizer_step_all()
        sync()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)

    pipeline.eval()
    camera = dm.eval_dataset.cameras[0:1].to(device)
    bundle = camera.generate_rays(camera_indices=0, keep_shape=False)
    bundle = bundle[torch.randperm(len(bundle))[:2048]]
    render_ms = []
    with torch.no_grad():
        for _ in range(3):
            sync()
            start = time.perf_counter()
            pipeline.model(bundle.to(device))
            sync()
            render_ms.append(1000 * (time.perf_counter() - start))
        sync()
        start = time.perf_counter()
        pipeline.model.get_outputs_for_camera(camera)
        sync()
        view_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    return SpeedResult(
        method=method, rays_per_step=int(rays_per_step), iters_per_s=1.0 / step_s, rays_per_s=rays_per_step / step_s,
        render_2048_ms=statistics.median(render_ms), render_view_s=view_s,
        view_pixels=int(camera.width.item() * camera.height.item()), peak_mem_mb=peak, device=device,
    ).as_dict()


def _child(queue: Any, *args: Any) -> None:
    try:
        queue.put(_measure(*args))
    except Exception as err:  # reported in the table; the other methods still run
        queue.put({"method": args[0], "error": f"{type(err).__name__}: {err}"})


def measure(method: str, scene: Path, work: Path, steps: int, warmup: int, device: str) -> Dict[str, Any]:
    """Measure one method in a fresh child process (its own peak memory)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, method, scene, work, steps, warmup, device))
    proc.start()
    result = queue.get()
    proc.join()
    return result
