"""Dataset: an image plus its panoptic labels (machine labels for training, ground truth for evaluation)."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import numpy.typing as npt
import torch
from jaxtyping import Float
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.data.utils.data_utils import get_depth_image_from_path
from torch import Tensor

from plift_ns.data.classes import ClassSet
from plift_ns.data.label_io import (
    read_label_png,
    read_probabilities,
    read_semantics,
    resize_labels,
    thing_instances,
)
from plift_ns.errors import PliftDataError


class PanopticDataset(InputDataset):
    """Per image: ``semantics`` (H, W) long (void = -1), ``instance`` (H, W) long (0 = none; ids on stuff and void
    pixels are dropped), ``confidence`` (H, W) float, optionally ``probability`` (H, W, C) float16, and (for
    evaluation) ``gt_semantics`` and ``gt_instance``."""

    def __init__(self, dataparser_outputs: DataparserOutputs, scale_factor: float = 1.0):
        super().__init__(dataparser_outputs, scale_factor)
        self.class_set: ClassSet = self.metadata["class_set"]
        self.load_probabilities = True
        """Whether to read the class distributions (training needs them, evaluation does not)."""
        self.load_ground_truth = True
        """Whether ``get_data`` reads the ground-truth label files (evaluation only; never needed for training)."""
        self.frames_with_stuff_instances: Dict[int, int] = {}
        """Frame index → number of stuff/void pixels whose instance id was dropped (reported once by the loader)."""

    def get_numpy_image(self, image_idx: int) -> npt.NDArray[np.uint8]:
        """nerfstudio's image reader, with a decoding failure (e.g. a truncated JPEG) reported with the file name."""
        try:
            return super().get_numpy_image(image_idx)
        except (OSError, ValueError, SyntaxError) as err:
            raise PliftDataError(
                f"cannot decode image ({err}); re-export or remove this frame",
                self._dataparser_outputs.image_filenames[image_idx],
            ) from None

    def _resized(self, labels: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
        return resize_labels(labels, (size[1], size[0]))

    def _path(self, key: str, idx: int):
        paths = self.metadata.get(key)
        return None if paths is None else paths[idx]

    def _native(self, size: Tuple[int, int]) -> Optional[Tuple[int, int]]:
        """The size label files must have: the image's, unless the images are rescaled (then labels are resized)."""
        return None if self.scale_factor != 1.0 else size

    def read_depth(self, idx: int, size: Tuple[int, int]) -> Optional[Float[Tensor, "H W"]]:
        """The frame's z-depth in the normalised scene's units at ``size`` = (H, W) (0: no measurement); None when
        the scene has no depth maps."""
        path = self._path("depth_file_filenames", idx)
        if path is None:
            return None
        try:
            depth = get_depth_image_from_path(path, size[0], size[1], self.metadata["depth_to_scene"])
        except Exception as err:  # cv2 returns None for unreadable files; numpy raises on bad .npy
            raise PliftDataError(
                f"cannot read the depth map ({type(err).__name__}); it must be a single-channel 16-bit PNG or a .npy "
                "array: re-export it, or remove 'depth_file_path' from transforms.json",
                path,
            ) from None
        return depth[..., 0]

    def read_labels(self, idx: int, size: Tuple[int, int], probabilities: bool) -> Dict[str, torch.Tensor]:
        """The machine labels of frame ``idx`` at image size ``size`` = (H, W): semantics, instance, confidence and,
        when asked for and present, the class distribution."""
        native = self._native(size)
        out: Dict[str, torch.Tensor] = {}
        sem = read_semantics(self._path("semantics_filenames", idx), self.class_set, native)
        inst, dropped = thing_instances(sem, read_label_png(self._path("instance_filenames", idx), native), self.class_set)
        if dropped:
            self.frames_with_stuff_instances[idx] = dropped
        out["semantics"] = torch.from_numpy(self._resized(sem, size))
        out["instance"] = torch.from_numpy(self._resized(inst, size))
        prob_path = self._path("probabilities_filenames", idx)
        if prob_path is not None and probabilities:
            prob, conf = read_probabilities(prob_path, self.class_set.num_classes, sem.shape)
            if self.scale_factor != 1.0:
                rows = np.linspace(0, sem.shape[0] - 1, size[0]).round().astype(int)
                cols = np.linspace(0, sem.shape[1] - 1, size[1]).round().astype(int)
                prob, conf = prob[rows][:, cols], conf[rows][:, cols]
            out["probability"] = torch.from_numpy(np.ascontiguousarray(prob))
            out["confidence"] = torch.from_numpy(np.ascontiguousarray(conf)).float()
        else:
            out["confidence"] = (out["semantics"] >= 0).float()
        return out

    def read_ground_truth(self, idx: int, size: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        """``gt_semantics`` / ``gt_instance`` of frame ``idx`` (those present), at image size ``size``."""
        native = self._native(size)
        out: Dict[str, torch.Tensor] = {}
        for key in ("gt_semantics", "gt_instance"):
            path = self._path(f"{key}_filenames", idx)
            if path is None:
                continue
            labels = read_semantics(path, self.class_set, native) if key == "gt_semantics" else read_label_png(path, native)
            out[key] = torch.from_numpy(self._resized(labels, size))
        return out

    def get_metadata(self, data: Dict) -> Dict:
        idx = data["image_idx"]
        size = tuple(data["image"].shape[:2])
        out = self.read_labels(idx, size, probabilities=self.load_probabilities)
        if self.load_ground_truth:
            out.update(self.read_ground_truth(idx, size))
        return out

    @property
    def has_ground_truth(self) -> bool:
        return self.metadata.get("gt_semantics_filenames") is not None

    @property
    def frame_names(self) -> List[str]:
        return list(self.metadata["frame_names"])
