"""Moved to :mod:`plift_ns.data.class_maps`, the one class-map module of plift-labels and plift-import; re-exported
here for the modules of ``plift_ns.labels`` that import it from this path."""

from plift_ns.data.class_maps import (
    builtin_class_maps,
    class_map_path,
    default_class_map,
    fold_probabilities,
    identity_class_map,
    load_class_map,
    read_class_map,
    resolve_class_map,
)

__all__ = [
    "builtin_class_maps",
    "class_map_path",
    "default_class_map",
    "fold_probabilities",
    "identity_class_map",
    "load_class_map",
    "read_class_map",
    "resolve_class_map",
]
