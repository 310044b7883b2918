"""Shared fixtures: small generated scenes, a tiny random Mask2Former and tiny in-process training runs (nothing is
downloaded). Test modules import nothing from each other: what they share lives here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plift_ns.synthetic import generate_scene, preset


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` preset (64x48, 12 train + 4 test views), written once per session. Do not modify it."""
    return generate_scene(preset("tiny"), tmp_path_factory.mktemp("tiny") / "scene")


@pytest.fixture(scope="session")
def tiny_scene_many_views(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` preset (64x48) with 48 training and 8 test views instead of 12 + 4: at 64 px, 12 views leave
    about a fifth of the test pixels on 10 cm voxels no training view hit, too few for lifting to vote. Do not modify
    it."""
    config = preset("tiny")
    config.num_train, config.num_test = 48, 8
    return generate_scene(config, tmp_path_factory.mktemp("tiny48") / "scene")


@pytest.fixture()
def scene_copy(tiny_scene: Path, tmp_path: Path) -> Path:
    """A private, modifiable copy of the tiny scene."""
    return Path(shutil.copytree(tiny_scene, tmp_path / "scene"))


@pytest.fixture(scope="session")
def tiny_m2f(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random Mask2Former checkpoint (133 COCO-panoptic classes) that plift-labels loads like a hub
    checkpoint; see tests/tiny_mask2former.py. Do not modify it."""
    from tiny_mask2former import make_tiny_mask2former

    path = tmp_path_factory.mktemp("tiny_m2f")
    make_tiny_mask2former(path)
    return path


# --------------------------------------------------------------------------- tiny in-process training runs
def make_tiny_trainer(scene: Path, output: Path, steps: int):
    """A panoptic-lifting-small TrainerConfig shrunk to seconds on a CPU (16³→24³ grids, 128 + 64 rays, 24 + 8
    samples), saving a checkpoint at the end; tests/test_training_cli.py's TINY_CLI is its command-line form."""
    from plift_ns.config import panoptic_lifting_small_trainer

    config = panoptic_lifting_small_trainer(max_steps=steps)
    config.pipeline.datamanager.data = scene
    config.pipeline.datamanager.rays_semantic = 128
    config.pipeline.datamanager.rays_instance = 64
    model = config.pipeline.model
    model.init_resolution, model.final_resolution, model.upsampling_iters = 16, 24, (10,)
    model.num_uniform_samples, model.num_samples, model.instance_loss_start_step = 24, 8, 5
    config.output_dir = output
    config.vis = "tensorboard"
    config.steps_per_save = steps
    config.steps_per_eval_batch = 10
    config.steps_per_eval_image = 10_000
    config.machine.device_type = "cpu"
    config.logging.local_writer.enable = False
    return config


def run_training(config) -> None:
    """Save ``config`` (a fresh timestamped run folder) and train it in-process, as ns-train does."""
    config.set_timestamp()
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()


@pytest.fixture(scope="session")
def tiny_trainer():
    """``tiny_trainer(scene, output_dir, steps)`` → the TrainerConfig of :func:`make_tiny_trainer`."""
    return make_tiny_trainer


@pytest.fixture(scope="session")
def run():
    """``run(config)``: train a TrainerConfig in-process (:func:`run_training`)."""
    return run_training


@pytest.fixture(scope="module")
def trained(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.yml of a tiny model trained in-process for 20 CPU steps, once per test module that uses it (a module
    may override this fixture with another run)."""
    config = make_tiny_trainer(tiny_scene, tmp_path_factory.mktemp("runs"), steps=20)
    # 20 steps against the default black background leave the tiny field mostly transparent (too few opaque rays
    # for the export and picking mechanics); against white its rays accumulate, as these tests need
    config.pipeline.model.background_color = "white"
    run_training(config)
    return config.get_base_dir() / "config.yml"
