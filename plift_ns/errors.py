"""Errors raised for bad user input (one clear message, naming the file)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class PliftDataError(ValueError):
    """Bad or inconsistent input data; the message names the offending file."""

    def __init__(self, message: str, path: Optional[Union[str, Path]] = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class PliftConfigError(ValueError):
    """A combination of settings that cannot work; the message names the flags and what to set instead."""
