"""Learning regression: a short CPU run of ``panoptic-lifting-small`` on a small generated scene must render maps
better than the noisy 2D labels it was trained on. It fails when a change stops lifting from improving on its labels
(a loss, a head, a default or the data path), which no unit test of a single piece would notice."""

from __future__ import annotations

from pathlib import Path

import pytest
from nerfstudio.utils.eval_utils import eval_setup

from plift_ns.eval.cli import evaluate_pipeline

STEPS = 400


@pytest.fixture(scope="module")
def lifted(tiny_scene_many_views: Path, tmp_path_factory: pytest.TempPathFactory, tiny_trainer, run) -> dict:
    """Scores of the lifted model and of the 2D labels on the 8 test views after ``STEPS`` steps (about a minute on
    2 cores). The method's defaults, at the scene's size: 16³→32³ grids, 256 + 128 rays, instances from step 133."""
    config = tiny_trainer(tiny_scene_many_views, tmp_path_factory.mktemp("learning"), steps=STEPS)
    config.pipeline.datamanager.rays_semantic, config.pipeline.datamanager.rays_instance = 256, 128
    model = config.pipeline.model
    model.init_resolution, model.final_resolution, model.head_grid_resolution = 16, 32, 32
    model.num_uniform_samples, model.num_samples = 64, 24
    model.upsampling_iters, model.instance_loss_start_step = (STEPS // 3,), STEPS // 3
    config.steps_per_eval_batch = STEPS + 1
    run(config)
    _, pipeline, _, _ = eval_setup(config.get_base_dir() / "config.yml", test_mode="test")
    return evaluate_pipeline(pipeline, None, show_progress=False)


def test_lifting_beats_its_labels(lifted: dict) -> None:
    """Measured over scene seeds 0, 1, 2 (lifted − labels): mIoU +15.5 / +16.3 / +12.4, PQ^scene +34.8 / +33.6 /
    +26.7, per-frame PQ +9.0 / +15.2 / +6.2. Without depth supervision the same run stays below its labels."""
    ours, labels = lifted["lifted"], lifted["labels_2d"]
    assert ours["num_frames"] == labels["num_frames"] == 8
    assert ours["mIoU"] >= labels["mIoU"] + 0.06, (ours["mIoU"], labels["mIoU"])
    assert ours["PQ_scene"] >= labels["PQ_scene"] + 0.15, (ours["PQ_scene"], labels["PQ_scene"])
    assert ours["PQ"] >= labels["PQ"], (ours["PQ"], labels["PQ"])
