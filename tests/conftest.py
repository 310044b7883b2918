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
