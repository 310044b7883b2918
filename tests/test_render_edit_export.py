"""Panoptic outputs through nerfstudio's colour-map / ns-render paths, instance editing, point-cloud export and the
viewer GUI logic, on one tiny model trained in-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
from nerfstudio.utils import colormaps
from nerfstudio.utils.eval_utils import eval_setup
from nerfstudio.viewer.control_panel import _get_colormap_options

from plift_ns.editing import Delete, Duplicate, EditedField, Move, apply_edits, base_field, make_transform, remove_edits
from plift_ns.editing.cli import EditScene, parse_target
from plift_ns.eval.cli import EvalModel
from plift_ns.export import ExportPanoptic, export_panoptic_point_cloud, read_ply, to_original_coordinates
from plift_ns.models.viewer_gui import ALL_CLASSES, PanopticViewerGUI, label_counts

PANOPTIC_OUTPUTS = ["rgb", "semantics_colormap", "instance_colormap", "panoptic"]


@pytest.fixture(scope="module")
def pipeline(trained: Path):
    _, pipeline, _, _ = eval_setup(trained, test_mode="inference")
    pipeline.model.eval()
    return pipeline


@pytest.fixture()
def model(pipeline):
    """The module's model, with edits and GUI state reset after each test."""
    yield pipeline.model
    remove_edits(pipeline.model)
    pipeline.model.panoptic_gui.restore_all()
    pipeline.model.panoptic_gui.gui_3_opacity.value = 0.5
    pipeline.model.eval()


@pytest.fixture()
def labelled(pipeline, model):
    """Known panoptic heads on the trained geometry (20 CPU steps do not learn instances): samples within 0.35 of the
    surface point seen at the centre of train view 0 are instance 3 of the first thing class; the rest is the first
    stuff class 0.5 above that point and higher, the second one below. Yields (thing class, instance id)."""
    field = base_field(model)
    class_set = model.class_set
    thing, (stuff_a, stuff_b) = class_set.thing_ids[0], class_set.stuff_ids[:2]
    num_ids = model.config.num_surrogate_ids
    camera = pipeline.datamanager.train_dataset.cameras[0:1]
    depth = model.get_outputs_for_camera(camera)["depth"]
    h, w = depth.shape[:2]
    ray = camera.generate_rays(camera_indices=0, keep_shape=True)[h // 2, w // 2]
    center = ray.origins + ray.directions * depth[h // 2, w // 2]

    def inside(positions: torch.Tensor) -> torch.Tensor:
        return (positions - center.to(positions)).norm(dim=-1) < 0.35

    def semantic_logits(positions: torch.Tensor) -> torch.Tensor:
        cls = torch.where(positions[..., 2] > center[2] + 0.5, stuff_a, stuff_b)
        cls = torch.where(inside(positions), thing, cls)
        return 10.0 * torch.nn.functional.one_hot(cls, class_set.num_classes).to(positions)

    def instance_logits(positions: torch.Tensor) -> torch.Tensor:
        ids = torch.where(inside(positions), 2, 0)
        return 10.0 * torch.nn.functional.one_hot(ids, num_ids).to(positions)

    fused = field.sample_outputs

    def sample_outputs(samples, instance_rows=None):  # the model's fused per-sample pass, with the heads above
        out = fused(samples, instance_rows)
        positions = samples.frustums.get_positions()
        out["semantics"] = semantic_logits(positions)
        out["instance"] = instance_logits(positions if instance_rows is None else positions[instance_rows])
        return out

    field.semantic_logits, field.instance_logits, field.sample_outputs = semantic_logits, instance_logits, sample_outputs
    yield thing, 3
    del field.semantic_logits, field.instance_logits, field.sample_outputs


def render(pipeline, index: int = 0) -> Dict[str, torch.Tensor]:
    return pipeline.model.get_outputs_for_camera(pipeline.datamanager.train_dataset.cameras[index : index + 1])


def labels(model, outputs) -> Tuple[torch.Tensor, torch.Tensor]:
    return model.panoptic_labels(outputs["semantics"], outputs["instance"])


def largest_thing(model, outputs) -> Tuple[Tuple[int, int], int]:
    counts = label_counts(*labels(model, outputs))
    things = {k: n for k, n in counts.items() if k[1] > 0}
    assert things, "the tiny model renders no thing instance"
    key = max(things, key=things.get)  # type: ignore[arg-type]
    return key, things[key]


def ffmpeg_env(tmp_path: Path) -> Dict[str, str]:
    """PATH with the venv's bin dir and, if needed, imageio-ffmpeg's binary linked in as ``ffmpeg``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    if shutil.which("ffmpeg", path=path) is None:
        import imageio_ffmpeg

        link_dir = tmp_path / "ffmpeg-bin"
        link_dir.mkdir(exist_ok=True)
        (link_dir / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
        path = f"{link_dir}{os.pathsep}{path}"
    return {**os.environ, "PATH": path, "HF_HUB_OFFLINE": "1"}


def check_viewer_path(name: str, image: torch.Tensor) -> None:
    """What the viewer does with an output (render_state_machine._send_output_to_viewer) must give H×W×3 in [0,1]."""
    options = _get_colormap_options(image.shape[-1], image.dtype)
    assert options, f"{name}: the viewer offers no colormap for shape {tuple(image.shape)} / {image.dtype}"
    out = colormaps.apply_colormap(image, colormaps.ColormapOptions(colormap=options[0]))
    assert out.shape == (*image.shape[:2], 3), name
    assert torch.is_floating_point(out) and torch.isfinite(out).all(), name
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, name


# ---------------------------------------------------------------- outputs and the viewer's colour-map path
def test_every_output_passes_the_viewer_colormap_path(pipeline, model) -> None:
    outputs = render(pipeline)
    assert {"rgb", "depth", "accumulation", "semantics", "instance", *PANOPTIC_OUTPUTS} <= set(outputs)
    for name, image in outputs.items():
        assert image.dim() == 3 and image.shape[-1] != 2 and torch.is_floating_point(image), name
        check_viewer_path(name, image)
        if name in PANOPTIC_OUTPUTS:
            assert image.shape[-1] == 3 and 0.0 <= float(image.min()) and float(image.max()) <= 1.0, name
    depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
    assert depth.shape[-1] == 3 and float(depth.max()) <= 1.0

    # the same with every GUI control away from its default
    gui: PanopticViewerGUI = model.panoptic_gui
    counts = label_counts(*labels(model, outputs))
    c, i = max(counts, key=counts.get)  # type: ignore[arg-type]
    gui.selected = (c, i)
    gui.hidden.add((c, i))
    gui.gui_2_class_filter.value = model.class_set.names[c]
    gui.gui_3_opacity.value = 0.8
    changed = render(pipeline)
    for name in PANOPTIC_OUTPUTS:
        check_viewer_path(name, changed[name])
    assert not torch.equal(changed["panoptic"], outputs["panoptic"])


def test_instance_colours_are_the_same_in_every_frame(pipeline, model, labelled) -> None:
    seen: Dict[Tuple[int, int], torch.Tensor] = {}
    for index in (0, 3, 7):
        outputs = render(pipeline, index)
        sem, inst = labels(model, outputs)
        for (c, i) in label_counts(sem, inst):
            mask = (sem == c) & (inst == i)
            colours = torch.unique(outputs["instance_colormap"][mask], dim=0)
            assert len(colours) == 1, "one colour per (class, instance) within a frame"
            if (c, i) in seen:
                assert torch.equal(seen[(c, i)], colours[0]), "the same colour in every frame"
            seen[(c, i)] = colours[0]


def test_ns_render_and_plift_eval_write_the_same_panoptic_video(trained: Path, tmp_path: Path, monkeypatch) -> None:
    import imageio_ffmpeg

    video = tmp_path / "panoptic.mp4"
    env = ffmpeg_env(tmp_path)
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ns-render"), "interpolate", "--load-config", str(trained),
            "--rendered-output-names", *PANOPTIC_OUTPUTS, "--interpolation-steps", "2", "--frame-rate", "4",
            "--output-path", str(video),
        ],
        capture_output=True, text=True, env=env, timeout=400,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert video.exists() and video.stat().st_size > 0
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    frames = list(reader)
    num_eval = 4  # the tiny scene's test views
    assert len(frames) == 2 * (num_eval - 1)
    assert tuple(meta["size"]) == (64 * len(PANOPTIC_OUTPUTS), 48)

    # plift-eval --video-path renders the same video from the model it has loaded for scoring
    monkeypatch.setenv("PATH", env["PATH"])
    ours = tmp_path / "from-eval.mp4"
    EvalModel(load_config=trained, output_path=tmp_path / "metrics.json", save_images=False, max_views=1,
              video_path=ours, video_outputs=PANOPTIC_OUTPUTS, interpolation_steps=2, frame_rate=4).main()
    assert (tmp_path / "metrics.json").exists()
    reader = imageio_ffmpeg.read_frames(str(ours))
    assert tuple(next(reader)["size"]) == tuple(meta["size"])
    our_frames = list(reader)
    assert len(our_frames) == len(frames)
    for a, b in zip(frames, our_frames):
        diff = np.abs(np.frombuffer(a, np.uint8).astype(int) - np.frombuffer(b, np.uint8).astype(int))
        assert diff.mean() < 1.0, "the same frames as ns-render's (up to video coding)"



def test_training_scores_and_renders_its_video_before_it_exits(
    trained: Path, tiny_scene: Path, tmp_path: Path, tiny_trainer, run, monkeypatch
) -> None:
    """--evaluate-after-training / --video-after-training: the metrics and the video plift-eval makes from the saved
    checkpoint, made by the training process from the model in memory."""
    import imageio_ffmpeg

    monkeypatch.setenv("PATH", ffmpeg_env(tmp_path)["PATH"])
    config = tiny_trainer(tiny_scene, tmp_path / "outputs", steps=2)
    config.load_dir = trained.parent / "nerfstudio_models"  # two more steps of the module's run
    config.evaluate_after_training = True
    config.video_after_training = tmp_path / "after-training.mp4"
    run(config)
    run_dir = config.get_base_dir()
    written = json.loads((run_dir / "plift_eval" / "metrics.json").read_text())
    assert written["step"] == 21 and Path(written["checkpoint"]).name == "step-000000021.ckpt"
    assert Path(written["checkpoint"]).exists()
    assert len(list((run_dir / "plift_eval" / "views").glob("*.png"))) == 4, "one panel per test view"

    again = tmp_path / "plift-eval.mp4"
    reloaded = EvalModel(load_config=run_dir / "config.yml", output_path=tmp_path / "metrics.json", save_images=False,
                         video_path=again).main()
    for row in ("lifted", "labels_2d"):
        assert written[row]["num_frames"] == reloaded[row]["num_frames"] == 4
        for key in ("PQ_scene", "SQ_scene", "RQ_scene", "PQ", "mIoU", "PSNR"):
            if key in reloaded[row]:
                assert written[row][key] == pytest.approx(float(reloaded[row][key]), abs=1e-6), (row, key)
    ours, theirs = imageio_ffmpeg.read_frames(str(config.video_after_training)), imageio_ffmpeg.read_frames(str(again))
    assert next(ours)["size"] == next(theirs)["size"]
    ours, theirs = list(ours), list(theirs)
    assert len(ours) == len(theirs) == 4 * (4 - 1), "4 interpolation steps between the 4 test cameras"
    for a, b in zip(ours, theirs):
        diff = np.abs(np.frombuffer(a, np.uint8).astype(int) - np.frombuffer(b, np.uint8).astype(int))
        assert diff.mean() < 1.0


# ---------------------------------------------------------------- editing
def test_delete_removes_the_instance_and_little_else(pipeline, model, labelled) -> None:
    before = render(pipeline)
    sem0, inst0 = labels(model, before)
    (c, i), count = largest_thing(model, before)
    keys = set(model.state_dict())
    edited = apply_edits(model, [Delete(c, i)])
    assert isinstance(model.field, EditedField) and edited.region(c, i) is not None
    after = render(pipeline)
    sem1, inst1 = labels(model, after)
    assert int(((sem1 == c) & (inst1 == i)).sum()) <= 0.02 * count, "the deleted instance's pixels are gone"
    others = ~((sem0 == c) & (inst0 == i))
    assert float((sem1[others] == sem0[others]).float().mean()) > 0.8, "the rest of the scene keeps its classes"
    # (no colour check here: a 20-step model's density is a fog, so removing a region tints every ray through it)

    # edits act only in eval mode and keep the checkpoint key names
    assert set(model.state_dict()) == keys
    model.train()
    assert not edited.active
    model.eval()
    remove_edits(model)
    assert torch.allclose(render(pipeline)["rgb"], before["rgb"], atol=1e-5)


def test_duplicate_and_move(pipeline, model, labelled) -> None:
    before = render(pipeline)
    (c, i), count = largest_thing(model, before)
    same = apply_edits(model, [Duplicate(c, i)])  # identity: the copy coincides with the original
    assert torch.allclose(render(pipeline)["rgb"], before["rgb"], atol=1e-4)
    region = same.region(c, i)
    assert region is not None
    shift = make_transform((0.0, 0.0, 0.0), rotate_z_deg=20.0, center=region.center.tolist())
    apply_edits(model, [Move(c, i, shift)])
    moved = render(pipeline)
    assert not torch.allclose(moved["rgb"], before["rgb"], atol=1e-3), "a moved instance changes the image"
    for name in PANOPTIC_OUTPUTS:
        check_viewer_path(name, moved[name])


def test_plift_edit_cli_renders_the_edited_scene(trained: Path, pipeline, model, tmp_path: Path) -> None:
    counts = label_counts(*labels(model, render(pipeline)))
    c, i = max(counts, key=counts.get)  # type: ignore[arg-type]
    names = list(model.class_set.names)
    assert parse_target(f"{names[c]}:{i}", names) == (c, i) == parse_target(f"{c}:{i}", names)
    out = tmp_path / "frames"
    EditScene(
        load_config=trained, output_path=out, delete=[f"{c}:{i}"], camera_path="dataset", pose_source="train",
        max_frames=2, rendered_output_names=["rgb", "instance_colormap"],
    ).main()
    frames = sorted(out.glob("*.png"))
    assert len(frames) == 2


# ---------------------------------------------------------------- export
def test_export_panoptic_point_cloud(pipeline, tmp_path: Path, labelled) -> None:
    summary = export_panoptic_point_cloud(pipeline, tmp_path, num_points=1500, progress=False)
    cloud = read_ply(tmp_path / "panoptic_pointcloud.ply")
    assert cloud.dtype.names == ("x", "y", "z", "red", "green", "blue", "class_id", "instance_id")
    assert len(cloud) == summary["num_points"] == 1500
    things = {(int(c), int(i)) for c, i in zip(cloud["class_id"], cloud["instance_id"]) if i > 0}
    files = sorted((tmp_path / "instances").glob("*.ply"))
    assert len(things) == len(summary["instances"]) == len(files) > 0
    for entry in summary["instances"]:
        part = read_ply(tmp_path / entry["file"])
        assert len(part) == entry["num_points"]
        assert (part["class_id"] == entry["class_id"]).all() and (part["instance_id"] == entry["instance_id"]).all()
    assert sum(e["num_points"] for e in summary["instances"] + summary["stuff"]) == len(cloud)
    assert json.loads((tmp_path / "panoptic_export.json").read_text())["coordinates"] == "original"

    # original coordinates: the dataparser's normalisation undone
    dpo = pipeline.datamanager.train_dataparser_outputs
    poses = dpo.cameras.camera_to_worlds[:, :3, 3]
    original = dpo.transform_poses_to_original_space(dpo.cameras.camera_to_worlds)[:, :3, 3]
    back = to_original_coordinates(poses, dpo.dataparser_transform, float(dpo.dataparser_scale))
    assert torch.allclose(back, original, atol=1e-4)


def test_plift_export_cli_arguments(trained: Path) -> None:
    import tyro

    parsed = tyro.cli(ExportPanoptic, args=["--load-config", str(trained), "--output-dir", "x", "--num-points", "7"])
    assert parsed.num_points == 7 and parsed.output_dir == Path("x")


# ---------------------------------------------------------------- viewer GUI logic (the browser test drives the UI)
def test_viewer_finds_the_panoptic_controls(pipeline) -> None:
    from nerfstudio.viewer.utils import parse_object
    from nerfstudio.viewer.viewer_elements import ViewerControl, ViewerElement

    elements = dict(parse_object(pipeline, ViewerElement, "Custom Elements"))
    names = sorted(e.name for e in elements.values())
    assert names == sorted(
        ["Classes", "Class filter", "Overlay opacity", "Select instance (then click the view)", "Selection",
         "Hide selected", "Delete selected", "Restore all"]
    )
    assert len(parse_object(pipeline, ViewerControl, "Custom Elements")) == 1
    assert all(name in elements["Custom Elements/model/panoptic_gui/gui_1_legend"].content
               for name in pipeline.model.class_set.names)


def test_click_selects_hides_and_deletes_an_instance(pipeline, model, labelled) -> None:
    gui: PanopticViewerGUI = model.panoptic_gui
    cameras = pipeline.datamanager.train_dataset.cameras
    outputs = render(pipeline)
    sem, inst = labels(model, outputs)
    (c, i), count = largest_thing(model, outputs)
    ys, xs = torch.nonzero((sem == c) & (inst == i), as_tuple=True)
    k = len(ys) // 2
    ray = cameras[0:1].generate_rays(camera_indices=0, keep_shape=True)[int(ys[k]), int(xs[k])]
    gui.select_ray(tuple(ray.origins.tolist()), tuple(ray.directions.tolist()))
    assert gui.selected == (c, i)
    assert abs(gui.pixel_share((c, i)) - count / sem.numel()) < 1e-6
    text = gui.gui_5_selection.content
    assert model.class_set.names[c] in text and f"instance **{i}**" in text and "%" in text

    gui.hide_selected()
    hidden = render(pipeline)
    mask = (sem == c) & (inst == i)
    assert torch.allclose(hidden["instance_colormap"][mask & ~_edges(mask)], hidden["rgb"][mask & ~_edges(mask)])

    gui.delete_selected()
    assert isinstance(model.field, EditedField)
    sem2, inst2 = labels(model, render(pipeline))
    assert int(((sem2 == c) & (inst2 == i)).sum()) <= 0.02 * count
    gui.restore_all()
    assert not isinstance(model.field, EditedField) and not gui.hidden and gui.selected is None
    assert gui.gui_2_class_filter.value == ALL_CLASSES


def _edges(mask: torch.Tensor) -> torch.Tensor:
    from plift_ns.models.viewer_gui import _outline

    return _outline(mask)


def test_class_filter_greys_out_other_classes(pipeline, model) -> None:
    outputs = render(pipeline)
    sem, _ = labels(model, outputs)
    c = int(torch.mode(sem.flatten()).values)
    model.panoptic_gui.gui_2_class_filter.value = model.class_set.names[c]
    filtered = render(pipeline)
    keep = sem == c
    assert torch.equal(filtered["semantics_colormap"][keep], outputs["semantics_colormap"][keep])
    if (~keep).any():
        grey = filtered["semantics_colormap"][~keep]
        assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    np.testing.assert_array_less(-1e-6, filtered["panoptic"].numpy())


class FakeRenderThread:
    """Runs ``work`` in a thread that is a nerfstudio RenderStateMachine, as the viewer's renders are."""

    def __new__(cls, work):
        import threading

        from nerfstudio.viewer.render_state_machine import RenderStateMachine

        class _Thread(RenderStateMachine):
            def __init__(self) -> None:
                threading.Thread.__init__(self, daemon=True)
                self.result, self.error = None, None

            def run(self) -> None:
                try:
                    self.result = work()
                except Exception as err:  # re-raised in the test's thread
                    self.error = err

        return _Thread()


def render_in_viewer_thread(model, camera) -> Dict[str, torch.Tensor]:
    thread = FakeRenderThread(lambda: model.get_outputs_for_camera(camera))
    thread.start()
    thread.join()
    if thread.error is not None:
        raise thread.error
    assert thread.result is not None
    return thread.result


def test_viewer_render_thread_gets_three_channel_semantics(pipeline, model) -> None:
    """In the viewer's render thread the C/K-channel outputs become soft colour maps (the viewer's PCA colour map
    raises on uniform images, e.g. a view of empty space, and that stops its render thread)."""
    outputs = render_in_viewer_thread(model, pipeline.datamanager.train_dataset.cameras[0:1])
    for name, image in outputs.items():
        assert image.shape[-1] in (1, 3), name
        check_viewer_path(name, image)
    assert render(pipeline)["semantics"].shape[-1] == model.class_set.num_classes, "elsewhere: raw distributions"


def test_viewer_survives_a_view_of_nothing(pipeline, model) -> None:
    camera = pipeline.datamanager.train_dataset.cameras[0:1]
    away = camera.camera_to_worlds.clone()  # turned around and moved far out: no sample of any ray is significant
    away[0, :3, :3] = away[0, :3, :3] @ torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    away[0, :3, 3] = 5.0 * away[0, :3, 3] / away[0, :3, 3].norm()
    nothing = type(camera)(
        camera_to_worlds=away, fx=camera.fx, fy=camera.fy, cx=camera.cx, cy=camera.cy, width=camera.width,
        height=camera.height,
    )
    outputs = render_in_viewer_thread(model, nothing)
    for name, image in outputs.items():
        check_viewer_path(name, image)


def test_gui_buttons_run_under_the_viewer_lock_without_deadlock(pipeline, model, labelled) -> None:
    """nerfstudio runs element callbacks under the viewer's (non-reentrant) train lock: they must not take it again."""
    import threading
    from types import SimpleNamespace

    gui: PanopticViewerGUI = model.panoptic_gui
    lock = threading.Lock()
    gui.viewer_control.viewer = SimpleNamespace(train_lock=lock, _trigger_rerender=lambda: None)
    try:
        gui.selected = labelled

        def press_delete_then_restore() -> None:
            with lock:
                gui.gui_7_delete.cb_hook(gui.gui_7_delete)
            with lock:
                gui.gui_8_restore.cb_hook(gui.gui_8_restore)

        thread = threading.Thread(target=press_delete_then_restore, daemon=True)
        thread.start()
        thread.join(timeout=120)
        assert not thread.is_alive(), "a button callback deadlocked on the viewer lock"
        assert not isinstance(model.field, EditedField) and not gui.deleted
    finally:
        del gui.viewer_control.viewer
