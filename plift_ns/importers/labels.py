"""A frame's labels in an importer: source label images mapped to the class set (instance ids kept only on things),
and the ``--labels-from`` input labels simulated from ground truth (a testing aid)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from plift_ns.data.class_maps import LabelLUT
from plift_ns.data.classes import ClassSet
from plift_ns.data.label_io import resize_labels
from plift_ns.errors import PliftDataError
from plift_ns.importers.images import read_png
from plift_ns.importers.writer import Frame

IdsFn = Callable[[np.ndarray, Path], np.ndarray]
"""A layout's fix-up of raw label ids before the class map (e.g. raw ScanNet ids -> NYU40)."""


def stuff_instances_to_zero(semantics: np.ndarray, instance: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """Instance ids only on thing pixels (0 on stuff and void), as the data contract asks."""
    thing = np.zeros(max(class_set.num_classes, class_set.void_id) + 1, dtype=bool)
    thing[: class_set.num_classes] = class_set.thing_mask()
    out = np.asarray(instance, dtype=np.int64).copy()
    out[~thing[np.clip(semantics, 0, len(thing) - 1)]] = 0
    return out


def read_panoptic_labels(sem_path: Path, inst_path: Path, lut: LabelLUT, size: Tuple[int, int],
                         ids: Optional[IdsFn] = None, void: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """One frame's class-set semantics (source ids through ``ids``, then ``lut``) and instance ids (0 off things),
    both nearest-resized to ``size`` = (width, height); ``void`` (a mask at ``size``) marks pixels made void."""
    raw = read_png(sem_path)
    sem = resize_labels(lut.apply(raw if ids is None else ids(raw, sem_path), sem_path), size)
    inst = resize_labels(read_png(inst_path), size)
    if void is not None:
        sem[void] = lut.class_set.void_id
    return sem, stuff_instances_to_zero(sem, inst, lut.class_set)


def simulated_machine_labels(gt_sem: np.ndarray, gt_inst: np.ndarray, class_set: ClassSet,
                             rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Machine-like 2D labels from GT with :func:`plift_ns.synthetic.simulate_labels` (a testing aid only)."""
    from plift_ns.synthetic.noise import NoiseConfig, simulate_labels

    labels = simulate_labels(gt_sem.astype(np.int64), gt_inst.astype(np.int64), class_set, NoiseConfig(), rng)
    return {"semantics": labels.semantics, "instance": labels.instance, "probability": labels.probability,
            "confidence": labels.confidence}


def input_labels(frame: Frame, labels_from: str, class_set: ClassSet, rng: np.random.Generator) -> None:
    """Fill ``frame``'s machine labels from its GT per ``--labels-from`` (``none``: leave them for plift-labels)."""
    if labels_from == "none":
        return
    if labels_from != "gt-with-noise":
        raise PliftDataError(f"unknown --labels-from '{labels_from}' (none, gt-with-noise)")
    assert frame.gt_semantics is not None and frame.gt_instance is not None
    labels = simulated_machine_labels(frame.gt_semantics, frame.gt_instance, class_set, rng)
    frame.semantics, frame.instance = labels["semantics"], labels["instance"]
    frame.probability, frame.confidence = labels["probability"], labels["confidence"]


def labels_note(labels_from: str) -> List[str]:
    if labels_from == "none":
        return ["no input labels were written (--labels-from none): run `plift-labels --data <dst>` before training"]
    return ["input labels were SIMULATED from the ground truth (--labels-from gt-with-noise): a testing aid, "
            "not a benchmark setting"]
