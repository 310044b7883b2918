"""In-the-wild benchmark: a generated room given to ``plift-wild`` as photos only, then COLMAP's poses against the
generator's cameras (registration rate, similarity-aligned trajectory error) and Panoptic Lifting trained on COLMAP
poses against the same labels on the true poses (PQ^scene, mIoU, PSNR; the COLMAP run is scored at the aligned
ground-truth test cameras).

Stages (each skipped when its output exists, so an interrupted run resumes)::

    python -m plift_ns.bench.wild --work-dir bench-results/wild --steps 3000

1. ``plift-synth`` renders the room (``gt/``); its images alone are copied to ``photos/``;
2. ``plift-wild --labels-from gt/`` solves the cameras and attaches the generator's simulated machine labels (and
   ground truth) by photo name, so both trainings lift identical labels (``scene/``);
3. the COLMAP centres are aligned to the generator's by a similarity (Umeyama); two more transforms files go into
   ``scene/``: ``transforms_true_poses.json`` (generator cameras and scene box) and
   ``transforms_aligned_gt_test.json`` (COLMAP cameras for training frames, aligned generator cameras for test frames);
4. ``ns-train`` on ``scene/`` and on ``scene/transforms_true_poses.json``, same method and steps;
5. both runs are scored on the test frames (``wild.json``).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from plift_ns.errors import PliftDataError
from plift_ns.io.atomic import atomic_write_json, numpy_json
from plift_ns.wild.align import Similarity, trajectory_error

TRUE_POSES = "transforms_true_poses.json"
ALIGNED_TEST = "transforms_aligned_gt_test.json"
DISTORTION = ("k1", "k2", "k3", "k4", "p1", "p2")


def _load(path: Path) -> Dict[str, Any]:
    return json.loads((path / "transforms.json" if path.is_dir() else path).read_text())


def room_size(gt_meta: Dict[str, Any]) -> float:
    """The room's longest side (generator scene box without its margin)."""
    box = np.asarray(gt_meta["scene_box"], dtype=np.float64)
    margin = float(gt_meta.get("synthetic", {}).get("config", {}).get("scene_box_margin", 0.0))
    return float(np.max(box[1] - box[0]) - 2 * margin)


def paired_poses(gt_meta: Dict[str, Any], meta: Dict[str, Any]) -> tuple:
    """(frame file_paths, COLMAP poses, generator poses) of the registered frames, matched by photo name."""
    photo_of = {frame: Path(photo).name for photo, frame in meta["plift_wild"]["frames"].items()}
    gt_by_name = {Path(f["file_path"]).name: f for f in gt_meta["frames"]}
    names, est, ref = [], [], []
    for f in meta["frames"]:
        gt = gt_by_name[photo_of[Path(f["file_path"]).name]]
        names.append(f["file_path"])
        est.append(np.asarray(f["transform_matrix"], dtype=np.float64))
        ref.append(np.asarray(gt["transform_matrix"], dtype=np.float64))
    return names, np.stack(est), np.stack(ref)


def _gt_camera(gt_meta: Dict[str, Any], w: int, h: int) -> Dict[str, Any]:
    """The generator's pinhole intrinsics scaled to a ``w`` x ``h`` image, with zero distortion."""
    sx, sy = w / float(gt_meta["w"]), h / float(gt_meta["h"])
    cam = {"fl_x": gt_meta["fl_x"] * sx, "fl_y": gt_meta["fl_y"] * sy, "cx": gt_meta["cx"] * sx,
           "cy": gt_meta["cy"] * sy, "w": w, "h": h}
    return {**cam, **{k: 0.0 for k in DISTORTION}}


def write_variants(scene: Path, gt_meta: Dict[str, Any], sim: Similarity) -> None:
    """``transforms_true_poses.json`` and ``transforms_aligned_gt_test.json`` beside the scene's transforms.json."""
    meta = _load(scene)
    _, _, ref = paired_poses(gt_meta, meta)
    cam = _gt_camera(gt_meta, int(meta["w"]), int(meta["h"]))
    true = copy.deepcopy(meta)
    for key in ("applied_transform", "ply_file_path", *DISTORTION):
        true.pop(key, None)
    true.update(cam, camera_model="PINHOLE", scene_box=gt_meta["scene_box"])
    for key in DISTORTION:
        true.pop(key, None)
    for frame, pose in zip(true["frames"], ref):
        frame["transform_matrix"] = pose.tolist()
    atomic_write_json(scene / TRUE_POSES, true, indent=2)

    aligned = copy.deepcopy(meta)
    test = set(meta.get("test_filenames", []))
    if not test:
        raise PliftDataError("no test_filenames in the scene: nothing to evaluate", scene / "transforms.json")
    to_colmap = sim.inverse()
    for frame, pose in zip(aligned["frames"], ref):
        if frame["file_path"] in test:
            frame["transform_matrix"] = to_colmap.apply_pose(pose).tolist()
            frame.update(cam)  # per-frame intrinsics win over the top-level COLMAP camera
    atomic_write_json(scene / ALIGNED_TEST, aligned, indent=2)


def pose_report(gt: Path, scene: Path) -> Dict[str, Any]:
    """Registration rate and the similarity-aligned trajectory error (also in % of the room's longest side)."""
    gt_meta, meta = _load(gt), _load(scene)
    _, est, ref = paired_poses(gt_meta, meta)
    sim, err = trajectory_error(est, ref)
    size = room_size(gt_meta)
    record = meta["plift_wild"]
    return {
        "num_photos": record["num_photos"], "registered": record["registered"],
        "registration_rate": record["registered"] / record["num_photos"],
        "room_size_m": size, "ate_rmse_m": err.rmse, "ate_median_m": err.median, "ate_max_m": err.max,
        "ate_rmse_pct_room": 100 * err.rmse / size, "ate_max_pct_room": 100 * err.max / size,
        "rotation_err_median_deg": err.rotation_deg_median, "rotation_err_max_deg": err.rotation_deg_max,
        "similarity_scale": sim.scale, "_similarity": sim,
    }


def score_run(load_config: Path, data: Optional[Path], image_dir: Optional[Path]) -> Dict[str, Any]:
    """Test-view metrics of a trained run, on its own scene or (``data``) another transforms file of the same scene."""
    from nerfstudio.utils.eval_utils import eval_setup

    from plift_ns.checkpoints import allow_trusted_checkpoints
    from plift_ns.eval.cli import evaluate_pipeline

    def use_data(config):
        if data is not None:
            config.pipeline.datamanager.data = data
            config.pipeline.datamanager.dataparser.data = data
        return config

    allow_trusted_checkpoints()
    _, pipeline, _, step = eval_setup(load_config, test_mode="inference", update_config_callback=use_data)
    result = evaluate_pipeline(pipeline, image_dir)
    return {"step": int(step), "lifted": result["lifted"], "labels_2d": result["labels_2d"]}


def _headline(metrics: Dict[str, Any]) -> Dict[str, float]:
    keys = ("PQ_scene", "SQ_scene", "RQ_scene", "PQ", "mIoU")
    out = {k: round(100 * float(metrics[k]), 2) for k in keys if metrics.get(k) is not None}
    if metrics.get("PSNR") is not None:
        out["PSNR"] = round(float(metrics["PSNR"]), 2)
    return out


def latest_config(output_dir: Path, experiment: str, method: str) -> Optional[Path]:
    runs = sorted((output_dir / experiment / method).glob("*/config.yml"))
    return runs[-1] if runs else None


@dataclass
class WildBench:
    """Generated room → photos → plift-wild → poses vs truth → Panoptic Lifting on COLMAP vs true poses."""

    work_dir: Path = Path("bench-results/wild")
    """Everything goes here: gt/, photos/, scene/, outputs/, wild.json."""
    width: int = 640
    height: int = 480
    num_train: int = 100
    num_test: int = 20
    seed: int = 0
    downscale: int = 2
    """Train and score on ns-process-data's images_<n> (COLMAP always sees the full photos)."""
    method: str = "panoptic-lifting-small"
    steps: int = 3000
    min_registered: float = 0.5
    matching_method: str = "auto"
    save_images: bool = False
    score_own_cameras: bool = True
    """Also score the COLMAP run at its own (COLMAP) test cameras."""

    def _timed(self, timings: Dict[str, float], key: str, fn) -> Any:
        start = time.perf_counter()
        out = fn()
        timings[key] = round(time.perf_counter() - start, 1)
        return out

    def _train(self, data: Path, name: str) -> Path:
        outputs = self.work_dir / "outputs"
        found = latest_config(outputs, name, self.method)
        if found is not None and any((found.parent / "nerfstudio_models").glob("*.ckpt")):
            return found
        cmd = ["ns-train", self.method, "--data", str(data), "--output-dir", str(outputs), "--experiment-name", name,
               "--vis", "tensorboard", "--max-num-iterations", str(self.steps), "--steps-per-save", str(self.steps),
               "--viewer.quit-on-train-completion", "True"]
        bin_dir = Path(sys.executable).parent
        cmd[0] = str(bin_dir / "ns-train") if (bin_dir / "ns-train").exists() else cmd[0]
        with open(self.work_dir / f"train-{name}.log", "w") as log:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
        found = latest_config(outputs, name, self.method)
        if code != 0 or found is None:
            raise PliftDataError(f"training failed (exit {code}); see train-{name}.log", self.work_dir)
        return found

    def main(self) -> Dict[str, Any]:
        from rich.console import Console

        console = Console()
        work = self.work_dir
        work.mkdir(parents=True, exist_ok=True)
        result_path = work / "wild.json"
        result: Dict[str, Any] = json.loads(result_path.read_text()) if result_path.exists() else {}
        timings: Dict[str, float] = result.get("timings_s", {})
        gt, photos, scene = work / "gt", work / "photos", work / "scene"

        if not (gt / "transforms.json").exists():
            from plift_ns.synthetic import SynthConfig, generate_scene

            cfg = SynthConfig(width=self.width, height=self.height, num_train=self.num_train, num_test=self.num_test,
                              seed=self.seed)
            console.print(f"[bold]1/5 rendering the room ({cfg.num_views} views {cfg.width}x{cfg.height})")
            self._timed(timings, "render_scene", lambda: generate_scene(cfg, gt, overwrite=True))
        if not photos.exists():
            photos.mkdir()
            for image in sorted((gt / "images").iterdir()):
                shutil.copy(image, photos / image.name)
        if not (scene / "transforms.json").exists():
            from plift_ns.wild.cli import WildArgs
            from plift_ns.wild.cli import run as run_wild

            console.print("[bold]2/5 plift-wild: COLMAP poses + the generator's labels by photo name")
            record = run_wild(WildArgs(data=photos, output_dir=scene, labels_from=gt, downscale=self.downscale,  # type: ignore[arg-type]
                                       min_registered=self.min_registered, matching_method=self.matching_method))  # type: ignore[arg-type]
            timings.update({f"wild_{k}": v for k, v in record["timings_s"].items()})

        console.print("[bold]3/5 aligning COLMAP's cameras to the generator's")
        poses = pose_report(gt, scene)
        sim = poses.pop("_similarity")
        write_variants(scene, _load(gt), sim)
        result.update(poses=poses, timings_s=timings)
        atomic_write_json(result_path, result, indent=2)
        console.print(
            f"registered {poses['registered']}/{poses['num_photos']} ({100 * poses['registration_rate']:.1f}%), "
            f"trajectory error RMSE {100 * poses['ate_rmse_m']:.1f} cm = {poses['ate_rmse_pct_room']:.2f}% of the "
            f"room ({poses['room_size_m']:.1f} m), rotation median {poses['rotation_err_median_deg']:.2f} deg"
        )

        console.print(f"[bold]4/5 training {self.method} for {self.steps} steps on COLMAP poses, then on true poses")
        runs = {}
        for name, data in (("colmap-poses", scene), ("true-poses", scene / TRUE_POSES)):
            key = f"train_{name}"
            runs[name] = self._timed(timings, key, lambda d=data, n=name: self._train(d, n)) if key not in timings \
                else self._train(data, name)
            atomic_write_json(result_path, {**result, "timings_s": timings}, indent=2)

        console.print("[bold]5/5 scoring the test views")
        views = (lambda n: work / "views" / n) if self.save_images else (lambda n: None)
        scores = {
            "true-poses": self._timed(timings, "score_true-poses",
                                      lambda: score_run(runs["true-poses"], None, views("true-poses"))),
            "colmap-poses@aligned-gt-cameras": self._timed(
                timings, "score_colmap_aligned",
                lambda: score_run(runs["colmap-poses"], scene / ALIGNED_TEST, views("colmap-aligned"))),
        }
        if self.score_own_cameras:
            scores["colmap-poses@colmap-cameras"] = self._timed(
                timings, "score_colmap_own", lambda: score_run(runs["colmap-poses"], None, views("colmap-own")))
        table = {name: _headline(s["lifted"]) for name, s in scores.items()}
        table["2D labels (input)"] = _headline(scores["true-poses"]["labels_2d"])
        result.update(metrics=table, runs={k: str(v) for k, v in runs.items()}, steps=self.steps, method=self.method,
                      timings_s=timings, full_metrics={k: v["lifted"] for k, v in scores.items()})
        atomic_write_json(result_path, result, indent=2, default=numpy_json)
        for name, row in table.items():
            console.print(f"{name:34s} " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()))
        console.print(f"[bold green]wrote {result_path}")
        return result


def main(argv: Optional[List[str]] = None) -> None:
    import tyro
    from rich.console import Console

    from plift_ns.errors import exit_on_data_error

    args = tyro.cli(WildBench, args=argv, prog="python -m plift_ns.bench.wild")
    exit_on_data_error("plift-bench wild", args.main, Console())


if __name__ == "__main__":
    main()
