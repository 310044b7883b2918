"""Quality benchmark: do lifted maps beat the 2D labels they were trained on, and does every ablation of the paper's
Table 2 hurt? Trains each variant on generated scenes and scores the test views with the paper's metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.engine.optimizers import Optimizers

from plift_ns.config import panoptic_lifting_small_trainer
from plift_ns.eval.cli import evaluate_pipeline

VARIANTS: Dict[str, Dict[str, bool]] = {
    "full": {"use_segment_consistency": True},
    "no segment consistency": {"use_segment_consistency": False},
    "no TTA confidences": {"use_label_probabilities": False},
    "unbounded logits": {"bounded_semantics": False, "bounded_instances": False},
    "no gradient blocking": {"stop_head_gradients": False},
    "all off": {
        "use_segment_consistency": False, "use_label_probabilities": False, "bounded_semantics": False,
        "bounded_instances": False, "stop_head_gradients": False,
    },
}
"""Table 2 of the paper: each robustness component switched off, and all of them."""


@dataclass
class RunResult:
    variant: str
    metrics: Dict[str, Any]
    labels_2d: Dict[str, Any]
    train_seconds: float
    curve: List[Dict[str, float]]
    """(step, seconds of training so far, PQ_scene, mIoU) at each evaluation point."""


def train_variant(
    scene: Path, switches: Dict[str, bool], steps: int, eval_every: int, device: str,
    progress: Optional[Callable[[int], None]] = None, seed: int = 0,
) -> RunResult:
    """Train one variant with nerfstudio's pipeline, optimizers and callbacks; score the test views along the way."""
    torch.manual_seed(seed)
    config = panoptic_lifting_small_trainer(max_steps=steps)
    config.pipeline.datamanager.data = scene
    for key, value in switches.items():
        setattr(config.pipeline.model, key, value)
    for group in config.optimizers.values():
        group["scheduler"].max_steps = steps
    pipeline = config.pipeline.setup(device=device, test_mode="val")
    optimizers = Optimizers(config.optimizers, pipeline.get_param_groups())
    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=optimizers, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    curve: List[Dict[str, float]] = []
    seconds = 0.0
    for step in range(steps):
        start = time.perf_counter()
        pipeline.train()
        for callback in callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        _, loss_dict, _ = pipeline.get_train_loss_dict(step)
        optimizers.zero_grad_all()
        sum(loss_dict.values()).backward()  # type: ignore[union-attr]
        optimizers.optimizer_step_all()
        optimizers.scheduler_step_all(step)
        for callback in callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
        seconds += time.perf_counter() - start
        if progress is not None:
            progress(step)
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            pipeline.eval()
            scores = evaluate_pipeline(pipeline, None, show_progress=False)
            lifted = scores["lifted"]
            curve.append({"step": step + 1, "seconds": seconds, "PQ_scene": lifted["PQ_scene"], "mIoU": lifted["mIoU"]})
    return RunResult("", scores["lifted"], scores["labels_2d"], seconds, curve)


def time_to_quality(curve: List[Dict[str, float]], fraction: float = 0.95) -> Optional[float]:
    """Training seconds until PQ^scene first reaches ``fraction`` of its final value."""
    if not curve:
        return None
    target = fraction * curve[-1]["PQ_scene"]
    return next(point["seconds"] for point in curve if point["PQ_scene"] >= target)


LABEL_SOURCES = ("simulated", "mask2former", "mask2former-no-tta")
"""Where the 2D labels of a benchmark scene come from: the scene generator's simulated machine labels, or the
from-scratch Mask2Former of :mod:`plift_ns.bench.segmenter` run through ``plift-labels`` with or without TTA."""


def relabel_scene(scene: Path, output: Path, segmenter: Path, tta: bool) -> Path:
    """A copy of ``scene`` whose 2D labels (every frame) come from ``plift-labels`` with the segmenter folder."""
    import shutil

    from rich.console import Console

    from plift_ns.labels.cli import LabelsArgs, run

    if output.exists():
        shutil.rmtree(output)
    shutil.copytree(scene, output)
    args = LabelsArgs(
        data=output, model=str(segmenter), class_map="identity", no_tta=not tta, overwrite=True, local_files_only=True,
        batch_size=8,
    )
    run(args, Console(quiet=True))
    return output
