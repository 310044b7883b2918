"""Camera poses for a photo folder: nerfstudio's ``ns-process-data images`` (COLMAP SIFT + mapper), run as the
user would run it, with the choices made for this machine (CPU SIFT without CUDA, no vocabulary-tree download)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional

from plift_ns.errors import PliftDataError

MatchingMethod = Literal["auto", "exhaustive", "sequential", "vocab_tree"]
EXHAUSTIVE_MAX_PHOTOS = 200
"""``auto`` matching: every pair up to this many photos (CPU matching: ~0.1 s a pair), else neighbours in file order (a walk-through capture)."""
INSTALL_HINT = (
    "install COLMAP (Debian/Ubuntu: apt-get install colmap; conda: conda install -c conda-forge colmap; "
    "or see https://colmap.github.io/install.html), or pass --colmap-cmd with its path"
)


@dataclass(frozen=True)
class Colmap:
    """A COLMAP executable: its command, version and whether it was built with CUDA."""

    cmd: str
    version: str
    cuda: bool


def find_colmap(cmd: str = "colmap") -> Colmap:
    """The COLMAP executable ``cmd``; a :class:`PliftDataError` saying how to install it when there is none."""
    path = shutil.which(cmd)
    if path is None:
        raise PliftDataError(f"COLMAP not found ('{cmd}' is not on PATH): {INSTALL_HINT}")
    try:
        out = subprocess.run([path, "-h"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    except (OSError, subprocess.SubprocessError) as err:
        raise PliftDataError(f"COLMAP ({path}) does not run ({err}): {INSTALL_HINT}") from None
    text = out.stdout + out.stderr
    version = "unknown"
    for line in text.splitlines():
        if line.strip().startswith("COLMAP"):
            version = line.split("--")[0].replace("COLMAP", "").strip() or version
            break
    return Colmap(cmd=path, version=version, cuda="without CUDA" not in text)


def check_process_data() -> None:
    """nerfstudio's ``ns-process-data`` imports (its open3d needs system libraries, e.g. libusb on Debian)."""
    try:
        import nerfstudio.scripts.process_data  # noqa: F401
    except ImportError as err:
        hint = " (Debian/Ubuntu: apt-get install libusb-1.0-0, or bash scripts/colmap.sh)" if "libusb" in str(err) else ""
        raise PliftDataError(f"ns-process-data cannot start: {err}{hint}") from None


def use_gpu(colmap: Colmap, requested: Optional[bool]) -> bool:
    """GPU SIFT only where COLMAP has CUDA and torch sees a GPU (or where the user asks for it)."""
    if requested is not None:
        return requested
    import torch

    return colmap.cuda and torch.cuda.is_available()


def matching_for(method: MatchingMethod, num_photos: int) -> str:
    """The ``--matching-method`` of ns-process-data; ``vocab_tree`` downloads a vocabulary file, so ``auto`` never
    picks it."""
    if method != "auto":
        return method
    return "exhaustive" if num_photos <= EXHAUSTIVE_MAX_PHOTOS else "sequential"


def process_data_command(photos: Path, output: Path, colmap: Colmap, gpu: bool, matching: str,
                         extra: Optional[List[str]] = None) -> List[str]:
    """The ``ns-process-data images`` command line (through this Python, so the project's nerfstudio runs)."""
    cmd = [sys.executable, "-m", "nerfstudio.scripts.process_data", "images", "--data", str(photos),
           "--output-dir", str(output), "--matching-method", matching, "--colmap-cmd", colmap.cmd,
           "--gpu" if gpu else "--no-gpu", "--verbose"]
    return cmd + list(extra or [])


def log_tail(path: Path, lines: int) -> List[str]:
    """The last ``lines`` non-empty lines of a log (ffmpeg progress lines left out)."""
    text = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip() and "frame=" not in ln]
    return text[-lines:]


@dataclass(frozen=True)
class Registration:
    """Which photos COLMAP placed (``ns-process-data`` keeps the largest model, ``colmap/sparse/0``)."""

    registered: List[str]  # frame file names (frame_00001.png ...)
    missing: List[str]  # frame file names without a pose
    total: int

    @property
    def rate(self) -> float:
        return len(self.registered) / self.total if self.total else 0.0


def read_registration(scene: Path, frame_names: Dict[str, str]) -> Registration:
    """Registered and unregistered frames of an ``ns-process-data`` output (``frame_names``: photo -> frame file)."""
    transforms = scene / "transforms.json"
    done = set()
    if transforms.exists():
        meta = json.loads(transforms.read_text())
        done = {Path(f["file_path"]).name for f in meta.get("frames", [])}
    names = list(frame_names.values())
    return Registration(registered=[n for n in names if n in done], missing=[n for n in names if n not in done],
                        total=len(names))


def check_registration(reg: Registration, frame_names: Dict[str, str], min_rate: float, scene: Path) -> None:
    """Refuse a reconstruction that placed fewer than ``min_rate`` of the photos, naming some that failed."""
    if reg.rate >= min_rate and reg.registered:
        return
    photo_of = {v: k for k, v in frame_names.items()}
    examples = ", ".join(photo_of[n] for n in reg.missing[:5]) + (" ..." if len(reg.missing) > 5 else "")
    raise PliftDataError(
        f"COLMAP registered {len(reg.registered)} of {reg.total} photos ({100 * reg.rate:.0f}% < "
        f"{100 * min_rate:.0f}%); not placed: {examples}. Take more overlapping, sharp, textured photos, try "
        "--matching-method exhaustive, or accept fewer with --min-registered",
        scene,
    )
