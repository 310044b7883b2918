"""Atomic result outputs: refuse a non-empty target unless ``overwrite``; write to a temporary sibling and rename it
into place only once complete, so a failure leaves the old target untouched and nothing half-written, and an
overwrite leaves no stale files of the earlier result.

* :func:`refuse_existing`: the up-front check (call it before any heavy work);
* :func:`atomic_output_dir`: ``with atomic_output_dir(folder, overwrite) as tmp:`` — write into ``tmp``;
* :func:`atomic_output_file`: ``with atomic_output_file(path, overwrite) as tmp:`` — write the file ``tmp``
  (same suffix as ``path``, so format-by-extension writers such as ffmpeg still work);
* :func:`swap_into_place`: the final rename of a finished temporary file or folder over its target;
* :func:`atomic_write_bytes` / :func:`atomic_write_json`: replace one small file (bytes or JSON) in a single step,
  with no overwrite check (progress files, label files, results that a rerun refreshes).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from plift_ns.errors import PliftDataError

PathLike = Union[str, Path]


def refuse_existing(target: PathLike, overwrite: bool, is_dir: Optional[bool] = None, flag: str = "--overwrite") -> Path:
    """Raise :class:`PliftDataError` if ``target`` is a non-empty folder or an existing file and not ``overwrite``,
    or (whatever ``overwrite``) if it is a file where a folder will be written (``is_dir``) or the other way round.
    ``flag`` names the switch that allows overwriting in the message. Returns ``target`` as an absolute path."""
    target = Path(target).expanduser().absolute()
    if is_dir is True and target.exists() and not target.is_dir():
        raise PliftDataError("output exists and is not a folder", target)
    if is_dir is False and target.is_dir():
        raise PliftDataError("output exists and is a folder, not a file", target)
    if overwrite:
        return target
    if target.is_dir():
        if any(target.iterdir()):
            raise PliftDataError(f"output folder is not empty (pass {flag} to replace it)", target)
    elif target.exists() or target.is_symlink():
        raise PliftDataError(f"output file exists (pass {flag} to replace it)", target)
    return target


def _sibling(target: Path, suffix: str) -> Path:
    """A fresh, unused hidden name next to ``target`` (nothing is created)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


def swap_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` (a file or folder) to ``target``, replacing an existing one only once the new one is complete;
    if the final rename fails the old target is put back."""
    if not target.exists() and not target.is_symlink():
        os.replace(tmp, target)
        return
    old = _sibling(target, ".old")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


@contextmanager
def atomic_output_dir(target: PathLike, overwrite: bool = False, flag: str = "--overwrite") -> Iterator[Path]:
    """Yield an empty temporary sibling folder of ``target``; on success it replaces ``target`` whole, on any error
    it is removed and ``target`` is left as it was. Refuses a non-empty ``target`` unless ``overwrite`` (``flag``:
    see :func:`refuse_existing`)."""
    target = refuse_existing(target, overwrite, is_dir=True, flag=flag)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        refuse_existing(target, overwrite, is_dir=True, flag=flag)  # something may have appeared there meanwhile
        swap_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_output_file(target: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path of ``target`` (same suffix, not yet created) to write; on success it is
    renamed over ``target``, on any error it is removed and ``target`` is left as it was. Refuses an existing
    ``target`` unless ``overwrite``."""
    target = refuse_existing(target, overwrite, is_dir=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, f".tmp{target.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise PliftDataError("nothing was written", target)
        refuse_existing(target, overwrite, is_dir=False)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary sibling and rename it over ``path`` (creating its folder), so ``path`` is never
    half-written; an existing ``path`` is replaced without asking."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def numpy_json(value: Any) -> Any:
    """``json.dump``'s ``default`` for numpy scalars and arrays (anything else: its ``str``)."""
    import numpy as np

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def atomic_write_json(path: PathLike, data: Any, indent: int = 1, default: Optional[Callable[[Any], Any]] = None,
                      end: str = "\n") -> None:
    """:func:`atomic_write_bytes` of ``json.dumps(data, indent=indent, default=default) + end``."""
    atomic_write_bytes(path, (json.dumps(data, indent=indent, default=default) + end).encode())
