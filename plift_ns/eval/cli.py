"""``plift-eval``: render the test views of a trained model and score them (PQ^scene, SQ^scene, RQ^scene, PQ, mIoU,
PSNR) beside the same metrics of the input 2D labels; writes metrics.json and side-by-side PNGs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import tyro
from rich.console import Console
from rich.progress import track
from rich.table import Table

from plift_ns.checkpoints import allow_trusted_checkpoints
from plift_ns.data.classes import ClassSet
from plift_ns.errors import PliftDataError, exit_on_data_error
from plift_ns.eval.image_metrics import to_void_id
from plift_ns.eval.metrics import PanopticEvaluator
from plift_ns.eval.visualize import colorize_instances, colorize_semantics, side_by_side, write_png
from plift_ns.io.atomic import atomic_write_json, numpy_json

CONSOLE = Console(width=120)
HEADLINE = ("PQ_scene", "SQ_scene", "RQ_scene", "PQ", "mIoU", "PSNR")
VIDEO_OUTPUTS = ("rgb", "semantics_colormap", "instance_colormap", "panoptic")


@dataclass
class EvalModel:
    """Score a trained plift-ns model on its scene's test views."""

    load_config: Path
    """config.yml of the training run (outputs/<scene>/<method>/<time>/config.yml)."""
    output_path: Optional[Path] = None
    """metrics.json to write (default: <run dir>/plift_eval/metrics.json)."""
    image_dir: Optional[Path] = None
    """Folder for the side-by-side PNGs (default: beside metrics.json, in views/)."""
    save_images: bool = True
    max_views: Optional[int] = None
    """Score only the first n test views (quick checks)."""
    video_path: Optional[Path] = None
    """Also render a panoptic video here from the model already loaded (as ``ns-render interpolate`` would, between
    the test cameras; saves loading the model a second time)."""
    video_outputs: Tuple[str, ...] = VIDEO_OUTPUTS
    """Rendered outputs placed side by side in the video."""
    interpolation_steps: int = 4
    """Video frames from one test camera to the next."""
    frame_rate: int = 12

    def main(self) -> Dict[str, Any]:
        from nerfstudio.utils.eval_utils import eval_setup

        if not self.load_config.exists():
            raise PliftDataError("training config not found", self.load_config)
        allow_trusted_checkpoints()  # runs saved before the pipeline did this themselves

        config, pipeline, checkpoint, step = eval_setup(self.load_config, test_mode="inference")
        output = self.output_path or default_metrics_path(Path(config.get_base_dir()))
        image_dir = self.image_dir or output.parent / "views"
        results = evaluate_and_write(
            pipeline, output, image_dir if self.save_images else None, self.max_views,
            checkpoint=str(checkpoint), step=int(step), config=str(self.load_config),
        )
        if self.video_path is not None:
            render_video(pipeline, self.video_path, self.video_outputs, self.interpolation_steps, self.frame_rate)
        return results


def default_metrics_path(run_dir: Path) -> Path:
    """Where a run's scores go unless told otherwise: <run dir>/plift_eval/metrics.json."""
    return run_dir / "plift_eval" / "metrics.json"


def evaluate_and_write(
    pipeline: Any, output: Path, image_dir: Optional[Path], max_views: Optional[int] = None, **provenance: Any
) -> Dict[str, Any]:
    """:func:`evaluate_pipeline`, then metrics.json (with ``provenance``: checkpoint, step, config) written atomically
    and the headline table printed."""
    results = evaluate_pipeline(pipeline, image_dir, max_views)
    results.update(provenance)
    atomic_write_json(output, results, indent=2, default=numpy_json, end="")
    print_table(results)
    CONSOLE.print(f"[bold green]Wrote {output}" + (f" and views in {image_dir}" if image_dir is not None else ""))
    return results


def render_video(
    pipeline: Any, output: Path, outputs: Sequence[str], interpolation_steps: int, frame_rate: int
) -> None:
    """The video ``ns-render interpolate --rendered-output-names ...`` renders, from an already loaded pipeline."""
    from nerfstudio.cameras.camera_paths import get_interpolated_camera_path
    from nerfstudio.scripts.render import _render_trajectory_video
    from nerfstudio.utils import install_checks

    install_checks.check_ffmpeg_installed()
    cameras = pipeline.datamanager.eval_dataset.cameras
    path = get_interpolated_camera_path(cameras=cameras, steps=interpolation_steps, order_poses=False)
    _render_trajectory_video(
        pipeline, path, output_filename=output, rendered_output_names=list(outputs),
        seconds=interpolation_steps * len(cameras) / frame_rate, output_format="video",
    )


def evaluate_pipeline(
    pipeline: Any, image_dir: Optional[Path], max_views: Optional[int] = None, show_progress: bool = True
) -> Dict[str, Any]:
    """Render every evaluation view; metrics of the lifted model and of the input 2D labels against GT."""
    model = pipeline.model
    dataset = pipeline.datamanager.eval_dataset
    class_set: ClassSet = dataset.class_set
    if not dataset.has_ground_truth:
        raise PliftDataError(
            "the scene has no ground truth (gt_semantics_path / gt_instance_path): nothing to score against",
            Path(pipeline.datamanager.config.dataparser.data),
        )
    dataset.load_probabilities = False
    lifted = PanopticEvaluator(class_set, void_id=class_set.void_id)
    labels_2d = PanopticEvaluator(class_set, void_id=class_set.void_id)
    n = len(dataset) if max_views is None else min(max_views, len(dataset))
    views = track(range(n), description="Rendering and scoring test views") if show_progress else range(n)
    for idx in views:
        data = dataset.get_data(idx)
        camera = dataset.cameras[idx : idx + 1].to(model.device)
        with torch.no_grad():
            outputs = model.get_outputs_for_camera(camera)
        sem, inst = (t.cpu().numpy() for t in model.panoptic_labels(outputs["semantics"], outputs["instance"]))
        gt_sem = to_void_id(data["gt_semantics"].numpy(), class_set)
        gt_inst = data["gt_instance"].numpy()
        in_sem = to_void_id(data["semantics"].numpy(), class_set)
        in_inst = data["instance"].numpy()
        name = dataset.frame_names[idx]
        rgb = outputs["rgb"].clamp(0, 1).cpu().numpy()
        gt_rgb = data["image"][..., :3].numpy()
        lifted.add_frame(sem, inst, gt_sem, gt_inst, rgb, gt_rgb, name=name)
        labels_2d.add_frame(in_sem, in_inst, gt_sem, gt_inst, name=name)
        if image_dir is not None:
            panels = [
                ("GT", colorize_semantics(gt_sem, class_set)),
                ("2D labels", colorize_semantics(in_sem, class_set)),
                ("lifted", colorize_semantics(sem, class_set)),
                ("image", gt_rgb),
                ("GT instances", colorize_instances(gt_sem, gt_inst, class_set)),
                ("2D instances", colorize_instances(in_sem, in_inst, class_set)),
                ("lifted instances", colorize_instances(sem, inst, class_set)),
                ("render", rgb),
            ]
            grid = np.concatenate([side_by_side(panels[:4]), side_by_side(panels[4:])], axis=0)
            write_png(image_dir / f"{Path(name).stem}.png", grid)
    return {"lifted": lifted.compute(), "labels_2d": labels_2d.compute(), "class_set": class_set.name}


def print_table(results: Dict[str, Any]) -> None:
    """Headline metrics (percent; PSNR in dB) of the lifted model beside the 2D labels."""
    table = Table(title="Panoptic Lifting: test views")
    table.add_column("method")
    for key in HEADLINE:
        table.add_column(key, justify="right")
    for row, name in (("labels_2d", "2D labels (input)"), ("lifted", "plift-ns (lifted)")):
        values = results[row]
        cells = []
        for key in HEADLINE:
            v = values.get(key)
            cells.append("–" if v is None or (isinstance(v, float) and np.isnan(v)) else (f"{v:.2f}" if key == "PSNR" else f"{100 * v:.1f}"))
        table.add_row(name, *cells)
    CONSOLE.print(table)


def entrypoint() -> None:
    """Console script ``plift-eval``."""
    exit_on_data_error("plift-eval", lambda: tyro.cli(EvalModel).main(), CONSOLE)


if __name__ == "__main__":
    entrypoint()
