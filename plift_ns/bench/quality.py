"""Quality benchmark: do lifted maps beat the 2D labels they were trained on, and does every ablation of the paper's
Table 2 hurt? Trains each variant on generated scenes and scores the test views with the paper's metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from plift_ns.bench.time_to_quality import train_with_curve
from plift_ns.config import panoptic_lifting_small_trainer
from plift_ns.eval.cli import evaluate_pipeline

FULL: Dict[str, bool] = {
    "use_segment_consistency": True, "use_label_probabilities": True, "bounded_semantics": True,
    "bounded_instances": True, "stop_head_gradients": True,
}
"""Every robustness component of the paper's Table 2 on (the small variant's default turns segment consistency off)."""
VARIANTS: Dict[str, Dict[str, bool]] = {
    "full": FULL,
    "no segment consistency": {**FULL, "use_segment_consistency": False},
    "no TTA confidences": {**FULL, "use_label_probabilities": False},
    "unbounded logits": {**FULL, "bounded_semantics": False, "bounded_instances": False},
    "no gradient blocking": {**FULL, "stop_head_gradients": False},
    "all off": {key: False for key in FULL},
}
"""Table 2 of the paper: "full", each robustness component switched off from it, and all of them."""


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
    last: Dict[str, Any] = {}

    def evaluate(pipeline: Any) -> Dict[str, float]:
        last.update(evaluate_pipeline(pipeline, None, show_progress=False))
        return {"PQ_scene": last["lifted"]["PQ_scene"], "mIoU": last["lifted"]["mIoU"]}

    _, curve, seconds = train_with_curve(config, steps, eval_every, device, evaluate, progress)
    return RunResult("", last["lifted"], last["labels_2d"], seconds, curve)


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
