"""Finding a source layout's folders and per-frame files (in natural order, with errors naming the missing file)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

from plift_ns.errors import PliftDataError


def natural_key(stem: str) -> Tuple[Any, ...]:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", stem))


def source_folders(src: Union[str, Path], what: str, required: Sequence[Tuple[str, str]]) -> List[Path]:
    """``[src, src / name, ...]``: the source folder (``what``: scene, sequence, scan) and its ``required``
    ``(name, what it holds)`` sub-folders, each a clear error when missing."""
    src = Path(src)
    if not src.is_dir():
        raise PliftDataError(f"source {what} folder not found", src)
    return [src] + [require_dir(src, name, hint) for name, hint in required]


def require_dir(root: Path, name: str, what: str = "") -> Path:
    """``root / name``, which must be a folder."""
    path = root / name
    if not path.is_dir():
        hint = f" ({what})" if what else ""
        raise PliftDataError(f"missing folder '{name}/'{hint}", path)
    return path


def list_files(folder: Path, suffixes: Sequence[str], prefix: str = "") -> Dict[str, Path]:
    """Files of ``folder`` with one of ``suffixes``, keyed by stem without ``prefix``, in natural order."""
    found = {}
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in suffixes and p.stem.startswith(prefix):
            found[p.stem[len(prefix):]] = p
    return dict(sorted(found.items(), key=lambda kv: natural_key(kv[0])))


def check_frame_counts(images: Dict[str, Path], folders: Sequence[Tuple[Path, str]]) -> None:
    """Every ``(folder, suffix)`` holds as many files as ``color/`` holds images; else an error naming a missing one."""
    for folder, suffix in folders:
        files = list_files(folder, (suffix,))
        if len(files) != len(images):
            missing = [s for s in images if s not in files]
            where = folder / f"{missing[0]}{suffix}" if missing else folder
            raise PliftDataError(f"frame count mismatch: color/ has {len(images)} images, {folder.name}/ has "
                                 f"{len(files)} files", where)


def frame_file(folder: Path, stem: str, suffixes: Sequence[str], what: str) -> Path:
    """``folder/stem<suffix>`` for the first suffix that exists; a clear error naming the expected file otherwise."""
    for s in suffixes:
        path = folder / f"{stem}{s}"
        if path.is_file():
            return path
    raise PliftDataError(f"missing {what} for frame '{stem}' (frame counts of the folders differ)",
                         folder / f"{stem}{suffixes[0]}")
