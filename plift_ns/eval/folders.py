"""Folder mode: score PNG label folders (from plift-ns or any other method) matched by file name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from plift_ns.data.classes import ClassSet
from plift_ns.data.label_io import read_label_png
from plift_ns.errors import PliftDataError
from plift_ns.eval.metrics import PanopticEvaluator
from plift_ns.io.images import read_rgb

PathLike = Union[str, Path]


def _existing_dir(path: PathLike, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise PliftDataError(f"{what} folder does not exist", p)
    return p


def _counterpart(folder: Path, name: str, what: str, reference: Path) -> Path:
    path = folder / name
    if not path.is_file():
        raise PliftDataError(f"missing {what} file for {reference.name} (expected it in {folder})", path)
    return path


def _read_rgb(path: Path) -> np.ndarray:
    return read_rgb(path).astype(np.float32) / 255.0


def evaluate_folders(
    pred_semantics_dir: PathLike,
    pred_instance_dir: Optional[PathLike],
    gt_semantics_dir: PathLike,
    gt_instance_dir: PathLike,
    class_set: ClassSet,
    *,
    names: Optional[Sequence[str]] = None,
    pred_rgb_dir: Optional[PathLike] = None,
    gt_rgb_dir: Optional[PathLike] = None,
    ignore_pred_void: bool = False,
    robust_threshold: float = 0.0,
) -> Dict[str, Any]:
    """Score folders of single-channel PNG label maps, frame by frame, matched by file name.

    The frames are the ``*.png`` files of ``pred_semantics_dir`` (sorted by name), or the given ``names`` (e.g. the
    test split's file names). Each needs a file of the same name in ``pred_instance_dir`` (``None``: a method without
    instances, every instance id 0), ``gt_semantics_dir`` and ``gt_instance_dir``, and in the RGB folders when given
    (PSNR). Class ids follow ``class_set`` (void = its ``void_id``). Returns :meth:`PanopticEvaluator.compute`'s dict
    plus ``"files"`` (the scored names); a missing counterpart or a size mismatch raises :class:`PliftDataError`
    naming the file.
    """
    pred_sem_dir = _existing_dir(pred_semantics_dir, "pred semantics")
    pred_inst_dir = None if pred_instance_dir is None else _existing_dir(pred_instance_dir, "pred instance")
    gt_sem_dir = _existing_dir(gt_semantics_dir, "gt semantics")
    gt_inst_dir = _existing_dir(gt_instance_dir, "gt instance")
    if (pred_rgb_dir is None) != (gt_rgb_dir is None):
        raise PliftDataError("give both pred_rgb_dir and gt_rgb_dir, or neither")
    pred_rgb = None if pred_rgb_dir is None else _existing_dir(pred_rgb_dir, "pred rgb")
    gt_rgb = None if gt_rgb_dir is None else _existing_dir(gt_rgb_dir, "gt rgb")

    if names is None:
        files: List[str] = sorted(p.name for p in pred_sem_dir.iterdir() if p.suffix.lower() == ".png" and p.is_file())
        if not files:
            raise PliftDataError("no .png files to evaluate", pred_sem_dir)
    else:
        files = [Path(n).name for n in names]
        if not files:
            raise PliftDataError("the list of frame names to evaluate is empty")

    evaluator = PanopticEvaluator(class_set, ignore_pred_void=ignore_pred_void, robust_threshold=robust_threshold)
    for name in files:
        ps_path = pred_sem_dir / name
        if not ps_path.is_file():
            raise PliftDataError("missing pred semantics file", ps_path)
        gs_path = _counterpart(gt_sem_dir, name, "gt semantics", ps_path)
        gi_path = _counterpart(gt_inst_dir, name, "gt instance", ps_path)
        gt_sem = _check_classes(read_label_png(gs_path), class_set, gs_path)
        size = gt_sem.shape
        pred_sem = _check_classes(_read_sized(ps_path, size, gs_path), class_set, ps_path)
        gt_inst = _read_sized(gi_path, size, gs_path)
        if pred_inst_dir is None:
            pred_inst = np.zeros(size, dtype=np.int64)
        else:
            pred_inst = _read_sized(_counterpart(pred_inst_dir, name, "pred instance", ps_path), size, gs_path)
        rgb_p = rgb_g = None
        if pred_rgb is not None and gt_rgb is not None:
            rp_path = _counterpart(pred_rgb, name, "pred rgb", ps_path)
            rg_path = _counterpart(gt_rgb, name, "gt rgb", ps_path)
            rgb_p, rgb_g = _read_rgb(rp_path), _read_rgb(rg_path)
            if rgb_p.shape != rgb_g.shape:
                raise PliftDataError(
                    f"image size {rgb_p.shape[:2]} differs from {rg_path} ({rgb_g.shape[:2]})", rp_path
                )
        evaluator.add_frame(pred_sem, pred_inst, gt_sem, gt_inst, rgb_p, rgb_g, name=ps_path)
    out = evaluator.compute()
    out["files"] = files
    return out


def _read_sized(path: Path, size: tuple, reference: Path) -> np.ndarray:
    array = read_label_png(path)
    if array.shape != tuple(size):
        raise PliftDataError(f"size {array.shape} (H, W) differs from {reference} {tuple(size)}", path)
    return array


def _check_classes(sem: np.ndarray, class_set: ClassSet, path: Path) -> np.ndarray:
    bad = (sem != class_set.void_id) & ((sem < 0) | (sem >= class_set.num_classes))
    if bad.any():
        values = np.unique(sem[bad])
        shown = ", ".join(str(v) for v in values[:8]) + (", ..." if values.size > 8 else "")
        raise PliftDataError(
            f"class ids outside 0..{class_set.num_classes - 1} that are not void ({class_set.void_id}): {shown}", path
        )
    return sem
