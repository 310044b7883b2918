"""Our trainer and its config: nerfstudio's, plus what ``ns-train`` / ``ns-viewer`` users need to be safe.

* The viewer binds 127.0.0.1 unless the command line names a host (``--viewer.websocket-host 0.0.0.0``).
* ``ns-train`` checks the scene (and ``--load-dir``) before it prints or saves anything; a data-contract problem is
  one message and exit status 2, with no traceback and no run folder left behind.
* Ctrl-C stops training after the current step, saves a checkpoint of it and exits 130; ``--load-dir`` resumes.
"""

from __future__ import annotations

import copy
import re
import shutil
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Type

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils import writer
from nerfstudio.utils.rich_utils import CONSOLE
from rich.markup import escape

from plift_ns.checkpoints import allow_trusted_checkpoints
from plift_ns.data.validation import validate_splits
from plift_ns.errors import PliftDataError
from plift_ns.eval.cli import VIDEO_OUTPUTS, EvalModel, default_metrics_path, evaluate_and_write, render_video
from plift_ns.pipeline import quiet_nerfstudio_indexing_warning

LOCAL_HOST = "127.0.0.1"
_NERFSTUDIO_DEFAULT_HOST = ViewerConfig.websocket_host  # "0.0.0.0": what ns-viewer passes when given no host
_HOST_FLAG = re.compile(r"^--viewer\.websocket[-_]host(=.*)?$")
_RUN_LEFTOVERS = re.compile(r"^(config\.yml|dataparser_transforms\.json|viewer_log_filename\.txt|events\.out\.tfevents\..*)$")
"""Files a run writes before its first training step: a run folder holding only these has nothing worth keeping."""
EXIT_DATA_ERROR = 2
EXIT_INTERRUPTED = 130


def host_given_on_command_line(argv: Optional[List[str]] = None) -> bool:
    """Whether the command line names ``--viewer.websocket-host`` (in any spelling tyro accepts)."""
    return any(_HOST_FLAG.match(arg) for arg in (sys.argv[1:] if argv is None else argv))


def print_error(error: Exception, hint: str) -> None:
    """One readable message: what and where (the error names the file), then what to do."""
    CONSOLE.print(f"[bold red]Error:[/bold red] {escape(str(error))}\n{escape(hint)}", soft_wrap=True, highlight=False)


def checkpoint_to_load(load_dir: Optional[Path], load_step: Optional[int], load_checkpoint: Optional[Path]) -> Optional[Path]:
    """The checkpoint ``--load-dir`` / ``--load-step`` / ``--load-checkpoint`` name, or a readable error."""
    if load_dir is not None:
        load_dir = Path(load_dir)
        if not load_dir.is_dir():
            raise PliftDataError("--load-dir: no such folder (give a run's nerfstudio_models/ folder)", load_dir)
        steps = {}
        for path in load_dir.glob("step-*.ckpt"):
            try:
                steps[int(path.stem[len("step-") :])] = path
            except ValueError:
                continue
        if not steps:
            raise PliftDataError(
                "--load-dir: no step-*.ckpt checkpoint in this folder (give a run's nerfstudio_models/ folder that "
                "holds one, or train from scratch without --load-dir)",
                load_dir,
            )
        if load_step is None:
            return steps[max(steps)]
        if load_step not in steps:
            raise PliftDataError(f"--load-step {load_step}: no such checkpoint; saved steps: {sorted(steps)}", load_dir)
        return steps[load_step]
    if load_checkpoint is not None:
        if not Path(load_checkpoint).is_file():
            raise PliftDataError("--load-checkpoint: file not found", load_checkpoint)
        return Path(load_checkpoint)
    return None


@dataclass
class PanopticTrainerConfig(TrainerConfig):
    """nerfstudio's TrainerConfig whose learning-rate decay follows ``--max-num-iterations``, whose viewer binds
    127.0.0.1 unless a host is asked for, and which checks the scene before ``ns-train`` prints or saves anything."""

    _target: Type = field(default_factory=lambda: PanopticTrainer)
    evaluate_after_training: bool = False
    """Once training ends, score the test views as ``plift-eval`` does, with the model still in memory (no second
    process, no reloading): <run dir>/plift_eval/metrics.json and the side-by-side views beside it."""
    video_after_training: Optional[Path] = None
    """Once training ends, render a panoptic video here, as ``plift-eval --video-path`` does (rgb, classes, instances
    and the overlay side by side, interpolated between the test cameras)."""

    def __setattr__(self, name: str, value: Any) -> None:
        # ns-viewer replaces the saved viewer config by its own command-line defaults, whose host is 0.0.0.0
        # (nerfstudio/scripts/viewer/run_viewer.py: ``config.viewer = self.viewer.as_viewer_config()``): keep the
        # viewer on localhost unless that host was asked for on the command line.
        if (
            name == "viewer"
            and isinstance(value, ViewerConfig)
            and value.websocket_host == _NERFSTUDIO_DEFAULT_HOST
            and not host_given_on_command_line()
        ):
            value = copy.copy(value)
            value.websocket_host = LOCAL_HOST
        super().__setattr__(name, value)

    def setup(self, **kwargs):
        for group in self.optimizers.values():
            scheduler = group.get("scheduler")
            if scheduler is not None and hasattr(scheduler, "max_steps"):
                scheduler.max_steps = self.max_num_iterations
        return super().setup(**kwargs)

    def _dataparser(self) -> Any:
        """The scene's dataparser as training will set it up (the datamanager's --data wins)."""
        datamanager = self.pipeline.datamanager
        dataparser_config = copy.deepcopy(datamanager.dataparser)
        if datamanager.data is not None:
            dataparser_config.data = Path(datamanager.data)
        return dataparser_config.setup()

    def check_scene(self) -> None:
        """Parse the scene's train and eval splits as training will and decode every frame's files once (with a
        progress bar); raises PliftDataError."""
        dataparser = self._dataparser()
        validate_splits([dataparser.get_dataparser_outputs(split="train"), dataparser.get_dataparser_outputs(split="val")])

    def check_after_training_options(self) -> None:
        """What ``--evaluate-after-training`` (ground truth in the eval split; raises PliftDataError) and
        ``--video-after-training`` (ffmpeg; exits with nerfstudio's message) need, before training starts."""
        if self.evaluate_after_training:
            dataparser = self._dataparser()
            if dataparser.get_dataparser_outputs(split="val").metadata.get("gt_semantics_filenames") is None:
                raise PliftDataError(
                    "--evaluate-after-training: the scene has no ground truth (gt_semantics_path / gt_instance_path) "
                    "to score against; train without it",
                    Path(dataparser.config.data),
                )
        if self.video_after_training is not None:
            from nerfstudio.utils import install_checks

            install_checks.check_ffmpeg_installed()

    def print_to_terminal(self) -> None:
        """ns-train calls this first (then ``save_config``, then training): check the scene and the checkpoint to
        resume from before anything is printed or written, and stop with one message if something is wrong."""
        try:
            self.check_scene()
            self.check_after_training_options()
        except PliftDataError as error:
            print_error(error, "Nothing was written. Fix it and run ns-train again (README: 'Data contract').")
            sys.exit(EXIT_DATA_ERROR)
        try:
            checkpoint_to_load(self.load_dir, self.load_step, self.load_checkpoint)
        except PliftDataError as error:
            print_error(error, "Nothing was written.")
            sys.exit(EXIT_DATA_ERROR)
        super().print_to_terminal()


class PanopticTrainer(Trainer):
    """nerfstudio's Trainer, plus: Ctrl-C saves the last finished step and exits 130; a failed setup leaves no empty
    run folder; a missing checkpoint is one readable error; nerfstudio's per-step indexing warnings are silenced."""

    config: PanopticTrainerConfig

    def setup(self, test_mode="val") -> None:
        quiet_nerfstudio_indexing_warning()
        try:
            self.config.check_after_training_options()  # before anything is written (run folder, event files)
            super().setup(test_mode=test_mode)
        except PliftDataError as error:
            self._remove_unused_run_folder()
            print_error(error, "Nothing was trained. Fix it and run ns-train again.")
            sys.exit(EXIT_DATA_ERROR)
        except KeyboardInterrupt:
            self._remove_unused_run_folder()
            CONSOLE.print("[bold yellow]Interrupted before training started; nothing was saved.[/bold yellow]")
            sys.exit(EXIT_INTERRUPTED)
        except BaseException:
            self._remove_unused_run_folder()
            raise
        self.last_finished_step: Optional[int] = None
        self.callbacks.append(
            TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], self._finished_step)
        )
        if self.config.evaluate_after_training or self.config.video_after_training is not None:
            self.callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN], self._evaluate_trained))

    def _evaluate_trained(self, step: int) -> None:
        """The AFTER_TRAIN callback of ``--evaluate-after-training`` / ``--video-after-training`` (the last
        checkpoint is saved by then)."""
        self.pipeline.eval()
        base = self.config.get_base_dir()
        if self.config.evaluate_after_training:
            output = default_metrics_path(base)
            evaluate_and_write(
                self.pipeline, output, output.parent / "views",
                checkpoint=str(self.checkpoint_dir / f"step-{step:09d}.ckpt"), step=int(step),
                config=str(base / "config.yml"),
            )
        if self.config.video_after_training is not None:
            render_video(
                self.pipeline, self.config.video_after_training, VIDEO_OUTPUTS, EvalModel.interpolation_steps,
                EvalModel.frame_rate,
            )

    def _finished_step(self, step: int) -> None:
        self.last_finished_step = step

    def _load_checkpoint(self) -> None:
        allow_trusted_checkpoints()  # nerfstudio's loader calls torch.load without weights_only
        path = checkpoint_to_load(self.config.load_dir, self.config.load_step, self.config.load_checkpoint)
        if path is None:
            return super()._load_checkpoint()
        # nerfstudio's loader, on the one file we found (its own search takes any file name in --load-dir)
        saved = self.config.load_dir, self.config.load_checkpoint
        self.config.load_dir, self.config.load_checkpoint = None, path
        try:
            super()._load_checkpoint()
        finally:
            self.config.load_dir, self.config.load_checkpoint = saved

    # --- Ctrl-C -----------------------------------------------------------------------------------------------------

    def train(self) -> None:
        self.interrupted = False
        self._saving = False
        self._previous_sigint = self._install_sigint_handler()
        try:
            super().train()
        except KeyboardInterrupt:
            if self.training_state == "completed":  # Ctrl-C in the viewer's wait after training: a normal exit
                return
            self._remove_unused_run_folder()
            CONSOLE.print("[bold yellow]Interrupted again: stopped without saving a checkpoint.[/bold yellow]")
            sys.exit(EXIT_INTERRUPTED)
        finally:
            self._restore_sigint_handler()

    def _install_sigint_handler(self):
        """First Ctrl-C: stop before the next step (nerfstudio's loop checks ``stop_training``); second: quit now,
        unless a checkpoint is being written."""
        if threading.current_thread() is not threading.main_thread():
            return None
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None  # someone else (a debugger, a test harness) handles Ctrl-C

        def on_sigint(signum, frame) -> None:
            if self._saving:
                CONSOLE.print("[bold yellow]Ctrl-C: writing a checkpoint, one moment.[/bold yellow]")
                self.interrupted = self.stop_training = True
                return
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = self.stop_training = True
            CONSOLE.print(
                "[bold yellow]Ctrl-C: stopping after this step and saving a checkpoint "
                "(Ctrl-C again to quit without saving).[/bold yellow]"
            )

        signal.signal(signal.SIGINT, on_sigint)
        return signal.default_int_handler

    def _restore_sigint_handler(self) -> None:
        previous, self._previous_sigint = getattr(self, "_previous_sigint", None), None
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

    def save_checkpoint(self, step: int) -> None:
        self._saving = True  # a Ctrl-C meanwhile does not leave a half-written file
        try:
            super().save_checkpoint(step)
        finally:
            self._saving = False

    def _train_complete_viewer(self) -> None:
        self._restore_sigint_handler()  # the viewer now waits for Ctrl-C to quit
        super()._train_complete_viewer()

    def _after_train(self) -> None:
        if not getattr(self, "interrupted", False):
            return super()._after_train()
        self.training_state = "completed"
        step = self.last_finished_step
        if step is not None:
            self.save_checkpoint(step)
        writer.write_out_storage()
        self.shutdown()
        if step is None:
            self._remove_unused_run_folder()
            CONSOLE.print("[bold yellow]Interrupted before the first step finished; nothing saved.[/bold yellow]")
        else:
            CONSOLE.print(
                f"[bold yellow]Interrupted: saved step {step} to {self.checkpoint_dir}[/bold yellow]\n"
                f"Resume with the same options plus [bold]--load-dir {self.checkpoint_dir}[/bold] "
                "(--max-num-iterations then counts further steps).",
                soft_wrap=True,
                highlight=False,
            )
        sys.exit(EXIT_INTERRUPTED)

    # --- cleanup ----------------------------------------------------------------------------------------------------

    def _remove_unused_run_folder(self) -> None:
        """Remove this run's folder if it holds only what a run writes before its first step (config.yml, ...)."""
        base = self.base_dir
        if not base.is_dir() or any(p.is_file() and not _RUN_LEFTOVERS.match(p.name) for p in base.rglob("*")):
            return
        shutil.rmtree(base, ignore_errors=True)
        output = Path(self.config.output_dir).resolve()
        parent = base.resolve().parent
        while parent != output and output in parent.parents:  # empty <experiment>/<method> folders above it
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
