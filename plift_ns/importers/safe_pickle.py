"""A restricted reader for the official release's ``segmentation_data.pkl`` (plain fields only, never arbitrary code).

``pickle.load`` can run any callable a file names. :func:`load_plain_pickle` resolves only an allow-list of
constructors (builtins containers/scalars, ``collections.OrderedDict``, numpy array/scalar reconstruction, and torch
tensors rebuilt from their storages through ``torch.load(weights_only=True)``) and refuses every other global with a
:class:`PliftDataError` naming the file and the refused reference. The result is converted to plain Python values.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import numpy as np

from plift_ns.errors import PliftDataError

_ALLOWED: Dict[Tuple[str, str], None] = dict.fromkeys([
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "bool"), ("builtins", "complex"), ("builtins", "str"),
    ("builtins", "bytes"), ("builtins", "bytearray"), ("builtins", "slice"), ("builtins", "range"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("torch._utils", "_rebuild_tensor_v2"),
])


def _storage_from_bytes(data: bytes) -> Any:
    """Replacement for ``torch.storage._load_from_bytes`` that uses torch's weights-only (safe) unpickler."""
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise PliftDataError(
            f"refusing to unpickle '{module}.{name}': only plain data (numbers, strings, lists, dicts, numpy arrays, "
            "tensors) is read from this file", self.path)


def to_plain(value: Any) -> Any:
    """Numpy/torch values -> Python ints, floats and lists (recursively through containers)."""
    if isinstance(value, dict):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if type(value).__module__ == "torch" and hasattr(value, "tolist"):
        return value.tolist()
    return value


def load_plain_pickle(path: Path) -> Any:
    """Read a pickle that may only hold plain data; anything else raises :class:`PliftDataError` (nothing is run)."""
    try:
        with open(path, "rb") as f:
            return to_plain(_RestrictedUnpickler(f, path).load())
    except PliftDataError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoding failure is a data error
        raise PliftDataError(f"cannot read pickle ({type(err).__name__}: {err})", path) from None
