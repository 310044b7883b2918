"""Errors raised for bad user input (one clear message, naming the file)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Union

if TYPE_CHECKING:
    from rich.console import Console


class PliftDataError(ValueError):
    """Bad or inconsistent input data; the message names the offending file."""

    def __init__(self, message: str, path: Optional[Union[str, Path]] = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class PliftConfigError(ValueError):
    """A combination of settings that cannot work; the message names the flags and what to set instead."""


def data_error_status(prog: str, main: Callable[[], object], console: "Console") -> int:
    """Run a console script's ``main``: 0, or 2 after one line ``prog: message`` for a :class:`PliftDataError`."""
    try:
        main()
    except PliftDataError as err:
        from rich.markup import escape

        console.print(f"[bold red]{prog}: {escape(str(err))}", soft_wrap=True)
        return 2
    return 0


def exit_on_data_error(prog: str, main: Callable[[], object], console: "Console") -> None:
    """:func:`data_error_status` that exits with status 2 on a :class:`PliftDataError`."""
    if data_error_status(prog, main, console):
        raise SystemExit(2)
