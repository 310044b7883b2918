"""What a user of ns-train / ns-viewer meets: the viewer's listening address, data-contract errors before training,
Ctrl-C and --load-dir, and a terminal free of nerfstudio's per-step indexing warnings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import List, Set

import psutil
import pytest
import yaml
from nerfstudio.utils.eval_utils import eval_setup

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
TINY_CLI = [  # the command-line form of conftest.make_tiny_trainer, so its checkpoints load into that config
    "--pipeline.datamanager.rays-semantic", "128", "--pipeline.datamanager.rays-instance", "64",
    "--pipeline.model.init-resolution", "16", "--pipeline.model.final-resolution", "24",
    "--pipeline.model.upsampling-iters", "10", "--pipeline.model.num-uniform-samples", "24",
    "--pipeline.model.num-samples", "8", "--pipeline.model.instance-loss-start-step", "5",
    "--steps-per-eval-batch", "10", "--steps-per-eval-image", "10000", "--machine.device-type", "cpu",
]
INDEXING_WARNING = "non-tuple sequence for multidimensional indexing"
EXIT_DATA_ERROR, EXIT_INTERRUPTED = 2, 130


@pytest.fixture(scope="module")
def trained(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory, tiny_trainer, run) -> Path:
    """A 3-step run (overrides conftest's 20-step ``trained``)."""
    config = tiny_trainer(tiny_scene, tmp_path_factory.mktemp("runs"), steps=3)
    run(config)
    return config.get_base_dir() / "config.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_addresses(pid: int, port: int, timeout: float) -> Set[str]:
    """The addresses process ``pid`` listens on at ``port`` (waits until it listens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {
            c.laddr.ip
            for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


class _ViewerUp(Exception):
    """Raised where ns-viewer would start waiting forever."""


def viewer_addresses(monkeypatch: pytest.MonkeyPatch, config: Path, extra: List[str]) -> Set[str]:
    """Run ``ns-viewer --load-config config --viewer.websocket-port <port> *extra`` (nerfstudio's entrypoint, its
    command-line parsing included, in this process) and return the addresses its viewer listens on."""
    from nerfstudio.scripts.viewer import run_viewer

    viewers = []

    class RecordedViewer(run_viewer.ViewerState):
        def __init__(self, *args, **kwargs) -> None:
            viewers.append(self)
            super().__init__(*args, **kwargs)

    class Clock:
        @staticmethod
        def sleep(seconds: float) -> None:
            raise _ViewerUp

    port = free_port()
    argv = ["ns-viewer", "--load-config", str(config), "--viewer.websocket-port", str(port), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(run_viewer, "ViewerState", RecordedViewer)
    monkeypatch.setattr(run_viewer, "time", Clock)
    try:
        with pytest.raises(_ViewerUp):
            run_viewer.entrypoint()
        return listening_addresses(os.getpid(), port, timeout=10)
    finally:
        for viewer in viewers:
            viewer.viser_server.stop()


# --- 1. the viewer binds 127.0.0.1 unless a host is asked for ----------------------------------------------------


def test_ns_viewer_listens_on_localhost_by_default(monkeypatch: pytest.MonkeyPatch, trained: Path) -> None:
    assert viewer_addresses(monkeypatch, trained, []) == {"127.0.0.1"}


def test_ns_viewer_honours_an_explicit_host(monkeypatch: pytest.MonkeyPatch, trained: Path) -> None:
    assert viewer_addresses(monkeypatch, trained, ["--viewer.websocket-host", "0.0.0.0"]) == {"0.0.0.0"}


def test_training_viewer_listens_on_localhost(tiny_scene: Path, tmp_path: Path, tiny_trainer) -> None:
    config = tiny_trainer(tiny_scene, tmp_path, steps=1)
    config.vis = "viewer+tensorboard"  # the method's viewer config, as `ns-train ... --vis viewer` uses it
    config.viewer.websocket_port = port = free_port()
    config.set_timestamp()
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    try:
        assert listening_addresses(os.getpid(), port, timeout=10) == {"127.0.0.1"}
    finally:
        trainer.shutdown()


def test_viewer_host_rule(monkeypatch: pytest.MonkeyPatch, trained: Path) -> None:
    """What ns-viewer does to the loaded config: ``config.viewer = <its command-line ViewerConfig>``."""
    from nerfstudio.configs.base_config import ViewerConfig

    config = yaml.load(trained.read_text(), Loader=yaml.Loader)  # what eval_setup does first
    monkeypatch.setattr(sys, "argv", ["ns-viewer", "--load-config", str(trained)])
    config.viewer = ViewerConfig()
    assert config.viewer.websocket_host == "127.0.0.1"
    config.viewer = ViewerConfig(websocket_host="192.168.1.2")
    assert config.viewer.websocket_host == "192.168.1.2"
    for flag in (["--viewer.websocket-host", "0.0.0.0"], ["--viewer.websocket_host=0.0.0.0"]):
        monkeypatch.setattr(sys, "argv", ["ns-viewer", "--load-config", str(trained), *flag])
        config.viewer = ViewerConfig()
        assert config.viewer.websocket_host == "0.0.0.0"


# --- 7. data-contract errors: one message before anything is printed or written ------------------------------------


def test_ns_train_on_a_bad_scene_prints_one_message_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, scene_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from nerfstudio.scripts import train

    missing = sorted((scene_copy / "semantics").glob("*.png"))[0]
    missing.unlink()
    output = tmp_path / "outputs"
    argv = ["ns-train", "panoptic-lifting-small", "--data", str(scene_copy), "--output-dir", str(output), *TINY_CLI]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        train.entrypoint()  # ns-train itself, command-line parsing included, in this process
    assert exited.value.code == EXIT_DATA_ERROR
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.strip()]
    assert len(lines) <= 3, captured.out  # "Using --data alias ..." + the error + what to do
    message = "\n".join(lines)
    assert f"{missing}: semantics file not found" in message and "Data contract" in message
    assert "Traceback" not in captured.out + captured.err
    assert "PanopticTrainerConfig" not in captured.out and "Saving config" not in captured.out
    assert not output.exists() or not any(output.iterdir()), "no run folder is left behind"


@pytest.mark.parametrize("damage", ["truncated image", "class id outside the class set"])
def test_ns_train_decodes_every_frame_before_writing(
    monkeypatch: pytest.MonkeyPatch, scene_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture, damage: str
) -> None:
    """Problems only a full decode finds (the header is fine) stop ns-train before the config dump, naming the file."""
    import json

    import numpy as np
    from nerfstudio.scripts import train
    from PIL import Image

    meta = json.loads((scene_copy / "transforms.json").read_text())
    frame = next(f for f in meta["frames"] if f["file_path"] in meta["test_filenames"])  # an evaluation frame
    if damage == "truncated image":
        victim = scene_copy / frame["file_path"]
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        expected = "cannot decode image"
    else:
        victim = scene_copy / frame["semantics_path"]
        labels = np.asarray(Image.open(victim)).copy()
        labels[-1, -1] = 42
        Image.fromarray(labels).save(victim)
        expected = "class id 42 is outside the class set"
    output = tmp_path / "outputs"
    argv = ["ns-train", "panoptic-lifting-small", "--data", str(scene_copy), "--output-dir", str(output), *TINY_CLI]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        train.entrypoint()
    assert exited.value.code == EXIT_DATA_ERROR
    out = capsys.readouterr().out
    assert f"{victim}: {expected}" in " ".join(out.split()), out
    assert "Saving config" not in out and "Traceback" not in out
    assert not output.exists() or not any(output.iterdir())


def test_data_error_during_setup_leaves_no_run_folder(
    monkeypatch: pytest.MonkeyPatch, tiny_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture, tiny_trainer
) -> None:
    """A problem found only while frames load (after ns-train saved config.yml): one message, no empty run folder."""
    from plift_ns.data.datamanager import PanopticDataManager
    from plift_ns.errors import PliftDataError

    def broken(self) -> None:
        raise PliftDataError("cannot decode image", tiny_scene / "images" / "frame_00000.png")

    monkeypatch.setattr(PanopticDataManager, "setup_train", broken)
    config = tiny_trainer(tiny_scene, tmp_path / "outputs", steps=1)
    config.set_timestamp()
    config.save_config()
    assert (config.get_base_dir() / "config.yml").exists()
    with pytest.raises(SystemExit) as exited:
        config.setup(local_rank=0, world_size=1).setup()
    assert exited.value.code == EXIT_DATA_ERROR
    assert "frame_00000.png: cannot decode image" in capsys.readouterr().out
    assert not any((tmp_path / "outputs").iterdir())



def test_evaluate_after_training_without_ground_truth_stops_before_training(
    scene_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture, tiny_trainer
) -> None:
    """--evaluate-after-training on a scene with nothing to score against: one message before the first step, not
    a failure after the whole run."""
    import json

    meta_path = scene_copy / "transforms.json"
    meta = json.loads(meta_path.read_text())
    for frame in meta["frames"]:
        frame.pop("gt_semantics_path", None)
        frame.pop("gt_instance_path", None)
    meta_path.write_text(json.dumps(meta))
    config = tiny_trainer(scene_copy, tmp_path / "outputs", steps=1)
    config.evaluate_after_training = True
    config.set_timestamp()
    config.save_config()
    with pytest.raises(SystemExit) as exited:
        config.setup(local_rank=0, world_size=1).setup()
    assert exited.value.code == EXIT_DATA_ERROR
    out = " ".join(capsys.readouterr().out.split())
    assert "--evaluate-after-training: the scene has no ground truth" in out and "Traceback" not in out
    assert not any((tmp_path / "outputs").iterdir())


# --- 8. Ctrl-C saves the current step; --load-dir resumes or says clearly what is missing --------------------------


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tiny_scene: Path, tmp_path: Path, tiny_trainer, run) -> None:
    log = tmp_path / "train.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [BIN / "ns-train", "panoptic-lifting-small", "--data", str(tiny_scene), "--output-dir", str(tmp_path),
             "--vis", "tensorboard", "--max-num-iterations", "100000", "--steps-per-save", "1000", *TINY_CLI],
            stdout=out, stderr=subprocess.STDOUT, env=ENV,
            # a shell runs background jobs with SIGINT ignored, and ns-train then rightly leaves Ctrl-C alone: give the
            # child the default disposition, as a terminal would
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 300  # imports and setup take minutes on a busy 2-core machine
        while "Step (% Done)" not in log.read_text(errors="replace"):  # the local writer's table: steps are running
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        returncode = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text(errors="replace")
    assert returncode == EXIT_INTERRUPTED, text[-3000:]
    assert "Traceback" not in text
    saved = list(tmp_path.glob("scene/panoptic-lifting-small/*/nerfstudio_models/step-*.ckpt"))
    assert len(saved) == 1, text[-3000:]
    step = int(saved[0].stem.split("-")[1])
    assert f"saved step {step}" in text

    config = tiny_trainer(tiny_scene, tmp_path / "resumed", steps=3)
    config.load_dir = saved[0].parent
    run(config)
    resumed = sorted((config.get_base_dir() / "nerfstudio_models").glob("*.ckpt"))
    assert [p.name for p in resumed] == [f"step-{step + 3:09d}.ckpt"]


def test_load_dir_without_checkpoint_is_one_readable_error(
    tiny_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture, tiny_trainer
) -> None:
    from nerfstudio.scripts.train import main as ns_train_main

    empty = tmp_path / "interrupted-run" / "nerfstudio_models"
    empty.mkdir(parents=True)
    (empty / ".DS_Store").write_text("")  # nerfstudio's own search would parse this as a step number
    config = tiny_trainer(tiny_scene, tmp_path / "outputs", steps=1)
    config.load_dir = empty
    with pytest.raises(SystemExit) as exited:
        ns_train_main(config)  # what ns-train runs after parsing the command line
    assert exited.value.code == EXIT_DATA_ERROR
    out = capsys.readouterr().out
    assert f"{empty}: --load-dir: no step-*.ckpt checkpoint" in out and "Traceback" not in out
    assert not (tmp_path / "outputs").exists()

    trainer = config.setup(local_rank=0, world_size=1)  # the Python API: the same error from the trainer
    from plift_ns.errors import PliftDataError

    with pytest.raises(PliftDataError, match="no step-"):
        trainer._load_checkpoint()


# --- 11. no torch indexing warning from nerfstudio's ray generation, in training or rendering ---------------------


@pytest.mark.filterwarnings("always::UserWarning")
def test_training_and_rendering_raise_no_indexing_warning(tiny_scene: Path, tmp_path: Path, tiny_trainer, run) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = tiny_trainer(tiny_scene, tmp_path, steps=3)
        run(config)
    assert not [w for w in caught if INDEXING_WARNING in str(w.message)], [str(w.message) for w in caught]
    with warnings.catch_warnings(record=True) as caught:  # a fresh filter list: what ns-render / ns-viewer get
        warnings.simplefilter("always")
        _, pipeline, _, _ = eval_setup(config.get_base_dir() / "config.yml", test_mode="inference")
        camera = pipeline.datamanager.eval_dataset.cameras[0:1]
        outputs = pipeline.model.get_outputs_for_camera(camera)
    assert "rgb" in outputs
    indexing = [w for w in caught if INDEXING_WARNING in str(w.message)]
    assert not indexing, [f"{w.filename}:{w.lineno}" for w in indexing]
