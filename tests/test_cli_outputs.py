"""Result-writing CLIs (plift-export, plift-edit): refuse to clobber outputs without --overwrite, replace them whole
with it (atomically), and reject bad arguments with one readable line before any heavy work."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from plift_ns.data.classes import load_class_set
from plift_ns.editing import cli as edit_cli
from plift_ns.errors import PliftDataError
from plift_ns.export import entrypoint as export_entrypoint
from plift_ns.io.atomic import atomic_output_dir, atomic_output_file, refuse_existing


@pytest.fixture(scope="module")
def class_names(tiny_scene: Path) -> List[str]:
    meta = json.loads((tiny_scene / "transforms.json").read_text())
    return list(load_class_set(meta["panoptic_classes"], tiny_scene).names)


def cli(entrypoint: Callable[[], None], args: List[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> Tuple[int, str]:
    """Run a console script in-process; (exit status, stdout + stderr). An uncaught exception fails the test."""
    monkeypatch.setattr(sys, "argv", ["prog", *args])
    code = 0
    try:
        entrypoint()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    out = capsys.readouterr()
    return code, out.out + out.err


def snapshot(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def siblings(path: Path) -> List[str]:
    """Hidden temporary / backup siblings of ``path`` left in its folder."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def earlier_export(folder: Path) -> Path:
    """A folder that looks like an earlier export, with a per-instance file the next export will not write."""
    (folder / "instances").mkdir(parents=True)
    (folder / "instances" / "chair_99.ply").write_bytes(b"stale")
    (folder / "panoptic_export.json").write_text("{}")
    return folder


# ---------------------------------------------------------------- the shared helper
def test_atomic_output_dir_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = earlier_export(tmp_path / "out")
    before = snapshot(target)
    with pytest.raises(PliftDataError, match="--overwrite"):
        with atomic_output_dir(target, overwrite=False):
            pass
    with pytest.raises(RuntimeError):
        with atomic_output_dir(target, overwrite=True) as tmp:
            (tmp / "half.ply").write_bytes(b"x")
            raise RuntimeError("failed half-way")
    assert snapshot(target) == before and siblings(target) == []

    with atomic_output_dir(target, overwrite=True) as tmp:
        assert tmp.parent == target.parent and tmp != target and not any(tmp.iterdir())
        (tmp / "new.ply").write_bytes(b"new")
    assert snapshot(target) == {"new.ply": b"new"} and siblings(target) == []

    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_output_dir(empty) as tmp:  # an empty folder is not refused
        (tmp / "a").write_text("a")
    assert snapshot(empty) == {"a": b"a"}
    with pytest.raises(PliftDataError, match="not a folder"):
        refuse_existing(target / "new.ply", overwrite=True, is_dir=True)


def test_atomic_output_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "video.mp4"
    with atomic_output_file(target) as tmp:
        assert tmp.suffix == ".mp4" and tmp.parent == target.parent and not tmp.exists()
        tmp.write_bytes(b"one")
    assert target.read_bytes() == b"one"
    with pytest.raises(PliftDataError, match=r"video\.mp4: output file exists \(pass --overwrite"):
        with atomic_output_file(target):
            pass
    with pytest.raises(RuntimeError):
        with atomic_output_file(target, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("failed half-way")
    assert target.read_bytes() == b"one" and siblings(target) == []
    with atomic_output_file(target, overwrite=True) as tmp:
        tmp.write_bytes(b"two")
    assert target.read_bytes() == b"two" and siblings(target) == []
    with pytest.raises(PliftDataError, match="is a folder"):
        refuse_existing(tmp_path / "sub", overwrite=True, is_dir=False)


# ---------------------------------------------------------------- plift-export
def test_export_refuses_a_non_empty_folder(trained: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = earlier_export(tmp_path / "export")
    before = snapshot(out)
    code, text = cli(export_entrypoint, ["--load-config", str(trained), "--output-dir", str(out),
                                         "--num-points", "100"], monkeypatch, capsys)
    assert code != 0
    assert str(out) in text and "--overwrite" in text and "Traceback" not in text
    assert snapshot(out) == before and siblings(out) == []


def test_export_overwrite_replaces_the_folder_whole(trained: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = earlier_export(tmp_path / "export")
    code, text = cli(export_entrypoint, ["--load-config", str(trained), "--output-dir", str(out),
                                         "--num-points", "100", "--overwrite"], monkeypatch, capsys)
    assert code == 0, text
    assert not (out / "instances" / "chair_99.ply").exists(), "stale per-instance file of the earlier export"
    summary = json.loads((out / "panoptic_export.json").read_text())
    assert summary["num_points"] > 0 and (out / "panoptic_pointcloud.ply").exists()
    listed = {e["file"] for e in summary["instances"] + summary["stuff"]}
    assert {str(p.relative_to(out)) for p in out.rglob("*.ply")} == listed | {"panoptic_pointcloud.ply"}
    assert siblings(out) == []


@pytest.mark.parametrize("bad", [["--split", "nope"], ["--num-points", "-5"], ["--num-points", "0"]])
def test_export_rejects_bad_arguments(bad: List[str], trained: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "export"
    code, text = cli(export_entrypoint, ["--load-config", str(trained), "--output-dir", str(out), *bad],
                     monkeypatch, capsys)
    assert code != 0 and not out.exists()
    assert bad[0] in text and "Traceback" not in text


# ---------------------------------------------------------------- plift-edit
def test_edit_refuses_an_existing_video(trained: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    video = tmp_path / "edited.mp4"
    video.write_bytes(b"an earlier render")
    code, text = cli(edit_cli.entrypoint, ["--load-config", str(trained), "--output-path", str(video),
                                           "--max-frames", "1"], monkeypatch, capsys)
    assert code != 0
    assert str(video) in text and "--overwrite" in text and "Traceback" not in text
    assert video.read_bytes() == b"an earlier render"


def test_edit_overwrite_replaces_video_and_frames(trained: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    common = ["--load-config", str(trained), "--camera-path", "dataset", "--pose-source", "train", "--max-frames",
              "1", "--rendered-output-names", "rgb", "--overwrite"]
    video = tmp_path / "edited.mp4"
    video.write_bytes(b"an earlier render")
    code, text = cli(edit_cli.entrypoint, [*common, "--output-path", str(video)], monkeypatch, capsys)
    assert code == 0, text
    assert video.stat().st_size > 1000 and video.read_bytes()[4:8] == b"ftyp" and siblings(video) == []

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "00007.png").write_bytes(b"stale")
    code, text = cli(edit_cli.entrypoint, [*common, "--output-path", str(frames)], monkeypatch, capsys)
    assert code == 0, text
    assert sorted(p.name for p in frames.iterdir()) == ["00000.png"] and siblings(frames) == []


def test_edit_unknown_class_is_one_readable_line(trained: Path, tmp_path: Path, monkeypatch, capsys,
                                                  class_names: List[str]) -> None:
    out = tmp_path / "edited.mp4"
    code, text = cli(edit_cli.entrypoint, ["--load-config", str(trained), "--delete", "notaclass:1",
                                           "--output-path", str(out)], monkeypatch, capsys)
    assert code != 0 and not out.exists()
    [line] = [line for line in text.splitlines() if "plift-edit:" in line]
    assert "unknown class 'notaclass'" in line and all(name in line for name in class_names)
    assert "Traceback" not in text


def test_edit_unknown_instance_id_renders_nothing(trained: Path, tmp_path: Path, monkeypatch, capsys,
                                                  class_names: List[str]) -> None:
    assert "chair" in class_names
    out = tmp_path / "edited.mp4"
    code, text = cli(edit_cli.entrypoint, ["--load-config", str(trained), "--delete", "chair:9999",
                                           "--region-resolution", "24", "--output-path", str(out)],
                     monkeypatch, capsys)
    assert code != 0, text
    assert not out.exists() and siblings(out) == []
    assert "'chair:9999'" in text and "not in the 3D scene" in text and "Traceback" not in text


def test_edit_target_check_lists_the_ids_in_3d() -> None:
    names = ["wall", "chair"]
    found = {0: [1], 1: [2, 5]}
    edit_cli.check_targets_in_3d(["chair:5", "chair:0", "wall:0"], names, found)
    with pytest.raises(PliftDataError, match=r"'chair:3': instance 3 of class chair .*: 0 \(the whole class\), 2, 5\)"):
        edit_cli.check_targets_in_3d(["chair:3"], names, found)
    with pytest.raises(PliftDataError, match="no point of class chair"):
        edit_cli.check_targets_in_3d(["1:1"], names, {0: [1]})
