"""Instance editing (paper Sec. 4.1.2): delete / duplicate / move 3D instances; panoptic point-cloud export."""

from plift_ns.editing.field import (
    Delete,
    Duplicate,
    EditedField,
    Move,
    apply_edits,
    base_field,
    instance_region,
    make_transform,
    remove_edits,
)

__all__ = [
    "Delete",
    "Duplicate",
    "EditedField",
    "Move",
    "apply_edits",
    "base_field",
    "instance_region",
    "make_transform",
    "remove_edits",
]
