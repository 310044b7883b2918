"""Shared fixtures: small generated scenes (nothing is downloaded)."""

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
