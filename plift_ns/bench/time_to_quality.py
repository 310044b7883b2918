"""Time to quality: wall-clock training seconds until test PSNR, PQ^scene and mIoU reach their targets.

Each method trains in its own process on the same scene with nerfstudio's pipeline, optimizers, schedulers and
callbacks; every ``eval_every`` steps the clock stops and the test views are scored (PSNR for every method; PQ^scene
and mIoU, and the 2D labels' own scores, for plift-ns). Runs as a script too, so that another checkout of plift-ns
(``PYTHONPATH=<checkout>``) can be measured with the same loop:
``python time_to_quality.py METHOD SCENE STEPS EVAL_EVERY DEVICE MAX_SECONDS`` prints one JSON line.
"""

from __future__ import annotations

import copy
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

Curve = List[Dict[str, float]]
"""Points (step, seconds of training so far, and the scores measured there)."""


def train_with_curve(
    config: Any, steps: int, eval_every: int, device: str, evaluate: Callable[[Any], Dict[str, float]],
    progress: Optional[Callable[[int], None]] = None, max_seconds: float = 0.0,
) -> Tuple[Any, Curve, float]:
    """Train ``config``'s pipeline for ``steps`` as nerfstudio's Trainer does (callbacks, optimizers, schedulers),
    calling ``evaluate(pipeline)`` outside the clock every ``eval_every`` steps; returns (pipeline, curve, seconds).
    ``max_seconds`` > 0 stops (with a last evaluation) once that much training time has passed."""
    from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation
    from nerfstudio.engine.optimizers import Optimizers

    for group in config.optimizers.values():
        scheduler = group.get("scheduler")
        if scheduler is not None and hasattr(scheduler, "max_steps"):
            scheduler.max_steps = steps
    pipeline = config.pipeline.setup(device=device, test_mode="val")
    optimizers = Optimizers(config.optimizers, pipeline.get_param_groups())
    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=optimizers, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    curve: Curve = []
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
        out_of_time = 0 < max_seconds <= seconds
        if (step + 1) % eval_every == 0 or step + 1 == steps or out_of_time:
            pipeline.eval()
            with torch.no_grad():
                curve.append({"step": step + 1, "seconds": seconds, **evaluate(pipeline)})
        if out_of_time:
            break
    return pipeline, curve, seconds


def test_psnr(pipeline: Any) -> Dict[str, float]:
    """Mean PSNR over the test views (any nerfstudio model)."""
    dataset = pipeline.datamanager.eval_dataset
    values = []
    for i in range(len(dataset)):
        camera = dataset.cameras[i : i + 1].to(pipeline.device)
        rgb = pipeline.model.get_outputs_for_camera(camera)["rgb"].clamp(0, 1).cpu()
        gt = dataset.get_image_float32(i)[..., :3]
        values.append(float(-10 * torch.log10(((rgb - gt) ** 2).mean().clamp(min=1e-10))))
    return {"PSNR": sum(values) / len(values)}


def first_time(curve: Curve, key: str, target: Optional[float]) -> Optional[float]:
    """Training seconds at the first evaluation where ``key`` reaches ``target`` (None: never, or no target)."""
    if target is None:
        return None
    return next((p["seconds"] for p in curve if p.get(key) is not None and p[key] >= target), None)


def measure_method(method: str, scene: Path, steps: int, eval_every: int, device: str,
                   max_seconds: float = 0.0) -> Dict[str, Any]:
    """Train ``method`` (``panoptic-lifting-small`` or a stock nerfstudio method) for ``steps`` (or ``max_seconds``
    of training) and return its curve, the 2D labels' scores (plift-ns), seconds per 512-px frame and peak memory."""
    from nerfstudio.configs.method_configs import all_methods

    from plift_ns.bench.speed import stub_lpips, trainer_config

    stub_lpips()
    torch.manual_seed(0)
    defaults = copy.deepcopy(all_methods[method].pipeline.model)
    config = trainer_config(method, scene, scene.parent)
    config.pipeline.model = defaults  # trainer_config starts every loss at step 0 (for timing): keep the defaults
    config.max_num_iterations = steps
    labels: Dict[str, float] = {}
    if method.startswith("panoptic-lifting"):
        from plift_ns.eval.cli import evaluate_pipeline

        def evaluate(pipeline: Any) -> Dict[str, float]:
            scores = evaluate_pipeline(pipeline, None, show_progress=False)
            labels.update({k: scores["labels_2d"][k] for k in ("PQ_scene", "mIoU", "PQ")})
            return {k: scores["lifted"][k] for k in ("PSNR", "PQ_scene", "mIoU", "PQ")}
    else:
        evaluate = test_psnr
    pipeline, curve, seconds = train_with_curve(config, steps, eval_every, device, evaluate, max_seconds=max_seconds)
    frame_s = viewer_frame_seconds(pipeline)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    return {"method": method, "curve": curve, "train_s": seconds, "labels_2d": labels, "frame_512_s": frame_s,
            "peak_mem_mb": peak, "device": device, "threads": torch.get_num_threads()}


def viewer_frame_seconds(pipeline: Any, longer_side: int = 512) -> float:
    """Seconds to render the first test camera as the viewer does, at its resolution (all of the model's outputs)."""
    from plift_ns.bench.viewer import scaled_camera
    from plift_ns.models.viewer_gui import as_viewer_frame

    camera = scaled_camera(pipeline.datamanager.eval_dataset.cameras[0:1], longer_side)
    start = time.perf_counter()
    with torch.no_grad(), as_viewer_frame():
        pipeline.model.get_outputs_for_camera(camera.to(pipeline.device))
    return time.perf_counter() - start


if __name__ == "__main__":
    method, scene, steps, eval_every, device, max_seconds = sys.argv[1:7]
    result = measure_method(method, Path(scene), int(steps), int(eval_every), device, float(max_seconds))
    print(json.dumps(result))


PSNR_TARGET = 25.0
MARGINS = {"PQ_scene": 15.3, "mIoU": 8.9}
"""Targets: test PSNR 25 dB, and PQ^scene / mIoU above the 2D labels' by the demo's margins (percent points)."""


def run_method(method: str, scene: Path, steps: int, eval_every: int, device: str,
               source: Optional[Path] = None, label: Optional[str] = None, max_seconds: float = 0.0) -> Dict[str, Any]:
    """``measure_method`` in a fresh process (its own peak memory); ``source`` = another plift-ns checkout to import."""
    import os
    import subprocess

    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
    code = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    args = [sys.executable, "-c", code, __file__, method, str(scene), str(steps), str(eval_every), device,
            str(max_seconds)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"method": label or method, "error": f"exit {done.returncode}: {' | '.join(tail)}"}
    result = json.loads(lines[-1])
    result["method"] = label or method
    return result


def targets_reached(result: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """Seconds of training until each target is first met (None: not within the run)."""
    curve, labels = result.get("curve", []), result.get("labels_2d", {})
    out = {"PSNR": first_time(curve, "PSNR", PSNR_TARGET)}
    for key, margin in MARGINS.items():
        out[key] = first_time(curve, key, labels[key] + margin / 100.0) if key in labels else None
    return out


def ttq_markdown(results: List[Dict[str, Any]], reference: str = "tensorf") -> str:
    """Table: seconds to each target, ratio against ``reference``'s time to PSNR 25, frame time and memory."""

    def fmt(value: Optional[float]) -> str:
        return "not reached" if value is None else f"{value:.0f}"

    ref = next((r for r in results if r["method"] == reference and "error" not in r), None)
    ref_psnr = targets_reached(ref)["PSNR"] if ref else None
    lines = ["| method | s to PSNR 25 | vs tensorf | s to PQ^scene labels+15.3 | s to mIoU labels+8.9 | final PSNR / "
             "PQ^scene / mIoU | 512-px frame (s) | peak MB |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['method']} | failed: {r['error']} |||||||")
            continue
        t = targets_reached(r)
        last = r["curve"][-1]
        if ref_psnr and t["PSNR"]:
            ratio = f"{ref_psnr / t['PSNR']:.2f}× shorter"
        elif ref and ref.get("curve") and t["PSNR"]:  # the reference never got there: a lower bound
            ref_s = ref["curve"][-1]["seconds"]
            ratio = f"> {ref_s / t['PSNR']:.2f}× shorter ({reference} below {PSNR_TARGET:g} after {ref_s:.0f} s)"
        else:
            ratio = "–"
        finals = " / ".join(f"{100 * last[k]:.1f}" if k != "PSNR" else f"{last[k]:.2f}"
                            for k in ("PSNR", "PQ_scene", "mIoU") if k in last)
        lines.append(f"| {r['method']} | {fmt(t['PSNR'])} | {ratio} | {fmt(t['PQ_scene'])} | {fmt(t['mIoU'])} | "
                     f"{finals} | {r['frame_512_s']:.2f} | {r['peak_mem_mb']:.0f} |")
    return "\n".join(lines)


def ttq_plot(results: List[Dict[str, Any]], path: Path) -> None:
    """Test PSNR (left) and PQ^scene / mIoU (right) over training wall-clock, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        if "error" in r:
            continue
        seconds = [p["seconds"] for p in r["curve"]]
        left.plot(seconds, [p["PSNR"] for p in r["curve"]], marker="o", label=r["method"])
        for key, style in (("PQ_scene", "-"), ("mIoU", "--")):
            if key in r["curve"][0]:
                right.plot(seconds, [100 * p[key] for p in r["curve"]], style, marker=".", label=f"{r['method']} {key}")
    left.axhline(PSNR_TARGET, color="grey", lw=0.8)
    left.set(xlabel="training wall-clock (s)", ylabel="test PSNR (dB)")
    right.set(xlabel="training wall-clock (s)", ylabel="percent")
    left.legend(fontsize=8)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
