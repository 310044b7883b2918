"""``plift-wild``: a folder of photos → a scene ``ns-train panoptic-lifting --data`` trains on.

Example::

    plift-wild --data photos/ --output-dir scenes/office --model facebook/mask2former-swin-large-coco-panoptic
    ns-train panoptic-lifting --data scenes/office

Stages: the photos are checked (readable, one size); ``ns-process-data images`` copies them, makes the
``images_2/4/8`` folders and solves the cameras with COLMAP (SIFT on the CPU unless COLMAP has CUDA and a GPU is
present; exhaustive matching up to 200 photos, else sequential); at least ``--min-registered`` of the photos must get
a pose; the frames are pointed at ``images_<--downscale>`` and a scene box is taken from the sparse points; then
``plift-labels`` labels every frame with the given segmenter (or ``--labels-from`` copies existing labels by photo
name). The output folder appears only once every stage has succeeded.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Literal, Optional

import tyro
from rich.console import Console

from plift_ns.errors import PliftDataError, data_error_status
from plift_ns.io.atomic import atomic_output_dir, refuse_existing
from plift_ns.labels.cli import DEFAULT_MODEL, LabelsArgs
from plift_ns.wild.colmap import (
    MatchingMethod,
    check_process_data,
    check_registration,
    find_colmap,
    log_tail,
    matching_for,
    process_data_command,
    read_registration,
    use_gpu,
)
from plift_ns.wild.photos import check_photos
from plift_ns.wild.progress import colmap_stage

CONSOLE = Console()


@dataclass
class WildArgs:
    """Photos of a room → poses (COLMAP via ns-process-data) → 2D panoptic labels → a plift-ns scene."""

    data: Path
    """Folder of photos (one camera, one image size; .jpg/.png/.tif)."""
    output_dir: Path
    """Scene folder to write (absent or empty unless --overwrite)."""
    model: str = DEFAULT_MODEL
    """Segmenter for plift-labels: hub id (cached) or local folder of a Mask2Former-family checkpoint."""
    classes: str = "scannet31"
    """Class set of the labels: scannet31 (the paper's in-the-wild set), scannet21 or a class-set JSON path."""
    tta: bool = True
    """Test-time augmentation of the segmenter (--no-tta: one pass per image, much faster on a CPU)."""
    device: Optional[str] = None
    """Torch device of the segmenter (default: cuda if available, else cpu)."""
    labels_from: Optional[Path] = None
    """Copy labels from this scene (frames matched by photo file name) instead of running plift-labels."""
    skip_labels: bool = False
    """Stop after the poses (run plift-labels --data <output-dir> later)."""
    downscale: Literal[1, 2, 4, 8] = 1
    """Train on ns-process-data's images_<n> folder (labels are made at that size)."""
    matching_method: MatchingMethod = "auto"
    """COLMAP matching: auto (exhaustive up to 200 photos, else sequential), exhaustive, sequential, vocab_tree
    (vocab_tree downloads a vocabulary file)."""
    gpu: Optional[bool] = None
    """COLMAP SIFT on the GPU (default: only if COLMAP was built with CUDA and a GPU is present)."""
    min_registered: float = 0.8
    """Fail when COLMAP gives a pose to fewer than this fraction of the photos."""
    colmap_cmd: str = "colmap"
    """COLMAP executable."""
    process_data_dir: Optional[Path] = None
    """Reuse the output of an earlier ``ns-process-data images --data <--data>`` run (e.g. on a GPU machine or with
    hloc) instead of running COLMAP; it is copied, not changed."""
    overwrite: bool = False
    """Replace a non-empty output folder."""


def _check_labeller(args: WildArgs) -> None:
    """Fail before COLMAP when the labels cannot be made: no labeller, no model, or a bad --labels-from."""
    if args.labels_from is not None:
        path = args.labels_from if args.labels_from.suffix == ".json" else args.labels_from / "transforms.json"
        if not path.exists():
            raise PliftDataError("--labels-from: transforms.json not found", path)
        return
    if args.skip_labels:
        return
    from plift_ns.labels.cli import build_segmenter

    with CONSOLE.status(f"checking the segmenter {args.model}"):
        build_segmenter(_labels_args(args, args.output_dir))  # loads it once: errors name the model and the fix


def _labels_args(args: WildArgs, scene: Path) -> LabelsArgs:
    return LabelsArgs(data=scene, model=args.model, classes=args.classes, no_tta=not args.tta, device=args.device)


def _run_logged(cmd: list, log: Path, total: int) -> int:
    """Run ``cmd`` with its output in ``log``, showing COLMAP's stage and progress from the log meanwhile."""
    import os

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    with open(log, "w") as out, CONSOLE.status("ns-process-data: starting") as status:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        done = threading.Event()

        def watch() -> None:
            while not done.wait(1.0):
                status.update(f"ns-process-data: {colmap_stage(log, total)}")

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            code = proc.wait()
        finally:
            done.set()
            watcher.join()
    return code


def _keep_log(log: Path, output: Path) -> Path:
    """Copy the COLMAP log out of the temporary scene (which a failure removes) into the system temp folder."""
    import shutil
    import tempfile

    kept = Path(tempfile.gettempdir()) / f"plift-wild-{output.name}-colmap.log"
    if log.exists():
        shutil.copy(log, kept)
    return kept


def _copy_process_data(source: Path, scene: Path) -> int:
    """Copy an earlier ns-process-data output into ``scene``; 0, or a :class:`PliftDataError` if it is not one."""
    import shutil

    if not (source / "transforms.json").exists():
        raise PliftDataError("not an ns-process-data output (no transforms.json): run ns-process-data images first",
                             source)
    with CONSOLE.status(f"copying {source}"):
        shutil.copytree(source, scene, dirs_exist_ok=True, symlinks=True)
    return 0


def run(args: WildArgs) -> Dict[str, Any]:
    """All stages; returns the scene's ``plift_wild`` record (photos, registration, timings)."""
    from plift_ns.wild.scene import finish_scene

    refuse_existing(args.output_dir, args.overwrite, is_dir=True)
    if not 0.0 < args.min_registered <= 1.0:
        raise PliftDataError(f"--min-registered must be in (0, 1] (got {args.min_registered})")
    photos = check_photos(args.data)
    colmap = find_colmap(args.colmap_cmd) if args.process_data_dir is None else None
    _check_labeller(args)
    if colmap is not None:
        check_process_data()
    gpu = use_gpu(colmap, args.gpu) if colmap is not None else False
    matching = matching_for(args.matching_method, len(photos.paths))
    names = photos.frame_names()
    where = (f"COLMAP {colmap.version} ({'GPU' if gpu else 'CPU'} SIFT, {matching} matching)" if colmap is not None
             else f"poses from {args.process_data_dir}")
    CONSOLE.print(f"{len(photos.paths)} photos {photos.size[0]}x{photos.size[1]} in {args.data}; {where}")
    timings: Dict[str, float] = {}
    with atomic_output_dir(args.output_dir, args.overwrite) as tmp:
        start = time.perf_counter()
        log = tmp / "colmap.log"
        if colmap is None:
            code = _copy_process_data(args.process_data_dir, tmp)  # type: ignore[arg-type]
        else:
            cmd = process_data_command(photos.folder.absolute(), tmp, colmap, gpu, matching)
            code = _run_logged(cmd, log, len(photos.paths))
        timings["poses_s"] = time.perf_counter() - start
        reg = read_registration(tmp, names)
        try:
            if code != 0 and not reg.registered:
                raise PliftDataError(f"ns-process-data failed (exit {code}) and no photo got a pose: "
                                     f"{' | '.join(log_tail(log, 4))}", args.data)
            check_registration(reg, names, args.min_registered, args.data)
        except PliftDataError as err:
            raise PliftDataError(f"{err} [COLMAP log kept in {_keep_log(log, args.output_dir)}]") from None
        CONSOLE.print(f"COLMAP placed {len(reg.registered)}/{reg.total} photos ({100 * reg.rate:.1f}%) "
                      f"in {timings['poses_s']:.0f} s")
        record: Dict[str, Any] = {
            "photos": str(args.data.absolute()), "frames": names, "registered": len(reg.registered),
            "unregistered": [p for p, f in names.items() if f in set(reg.missing)], "num_photos": reg.total,
            "colmap": colmap.version if colmap else None, "gpu_sift": gpu,
            "matching": matching if colmap else None, "process_data_dir": str(args.process_data_dir or ""),
        }
        finish_scene(tmp, args.downscale, record)
        start = time.perf_counter()
        if args.labels_from is not None:
            from plift_ns.wild.attach import attach_labels

            with CONSOLE.status(f"attaching labels from {args.labels_from}"):
                attach_labels(tmp, args.labels_from, names)
        elif not args.skip_labels:
            from plift_ns.labels.cli import run as run_labels

            run_labels(_labels_args(args, tmp), CONSOLE)
        timings["labels_s"] = time.perf_counter() - start
        record = finish_record(tmp, timings)
    CONSOLE.print(f"[bold green]wrote[/] {args.output_dir}")
    if args.skip_labels:
        CONSOLE.print(f"next: plift-labels --data {args.output_dir}  then  ns-train panoptic-lifting --data {args.output_dir}")
    else:
        CONSOLE.print(f"next: ns-train panoptic-lifting --data {args.output_dir}")
    return record


def finish_record(scene: Path, timings: Dict[str, float]) -> Dict[str, Any]:
    """Add the stage timings to the scene's ``plift_wild`` record."""
    import json

    from plift_ns.io.atomic import atomic_write_json

    path = scene / "transforms.json"
    meta = json.loads(path.read_text())
    meta["plift_wild"]["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    atomic_write_json(path, meta, indent=2)
    return meta["plift_wild"]


def main(argv: Optional[list] = None) -> int:
    """``plift-wild``; returns the exit status (2: bad input, one message)."""
    args = tyro.cli(WildArgs, args=argv, prog="plift-wild")
    return data_error_status("plift-wild", lambda: run(args), CONSOLE)


def entrypoint() -> None:
    """Console-script entry point of ``plift-wild``."""
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
