"""Datamanager: each step yields R_S (random rays over all training images) and R_I (rays of ONE image), Sec. 3.3."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Literal, Optional, Tuple, Type, Union

import torch
from jaxtyping import Float, Int
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.utils.dataloaders import FixedIndicesEvalDataloader, RandIndicesEvalDataloader
from nerfstudio.model_components.ray_generators import RayGenerator
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor

from plift_ns.data.compact import DenseDistributions, TopKDistributions
from plift_ns.data.dataparser import PanopticDataParserConfig
from plift_ns.data.dataset import PanopticDataset
from plift_ns.errors import PliftDataError


@dataclass
class PanopticDataManagerConfig(VanillaDataManagerConfig):
    """Panoptic datamanager: ``rays_semantic`` rays over all images + ``rays_instance`` rays from one image."""

    _target: Type = field(default_factory=lambda: PanopticDataManager)
    dataparser: PanopticDataParserConfig = field(default_factory=PanopticDataParserConfig)
    rays_semantic: int = 2048
    """|R_S|: rays sampled uniformly over all training pixels (RGB + semantic loss)."""
    rays_instance: int = 1024
    """|R_I|: rays sampled from one training image (instance + segment-consistency losses)."""
    eval_num_rays_per_batch: int = 1024
    compact_labels: Optional[bool] = None
    """Keep each training pixel's class distribution as its 3 most likely classes quantised to 1/255 (2 × 3 bytes a
    pixel) instead of all of them as float16 (2 × C bytes: 13 GB for 1000 frames of 640×480 with 21 classes).
    None (default): compact only when the float16 distributions would exceed ``dense_labels_max_gb``."""
    dense_labels_max_gb: float = 2.0
    """With ``compact_labels`` None: the most memory the exact float16 distributions may take (GiB)."""
    class_balance: float = 0.0
    """R_S pixels drawn with probability ∝ (share of training pixels labelled with their class)^(−class_balance):
    0 uniform over pixels (the paper), 1 every label class equally often. Rare classes then get enough rays to be
    fitted, while the labels' per-point majority across views (what the field learns) shifts only by the classes'
    weight ratio, (share_a / share_b)^class_balance."""
    load_depth: bool = False
    """Hold the training views' depth maps (when the scene has them) for the model's depth loss (2 bytes a pixel)."""


class FramePixels:
    """Every image and label of a split held as compact tensors for fast per-pixel sampling: uint8 colour, uint8 class
    ids (void 255), int16 instance ids, uint8 confidence and top-k class distributions (:class:`TopKDistributions`);
    ground truth is never read here."""

    def __init__(
        self, dataset: PanopticDataset, device: Union[torch.device, str], description: str, probabilities: bool = True,
        compact: Optional[bool] = True, dense_max_gb: float = 2.0, depth: bool = False,
    ) -> None:
        n = len(dataset)
        h, w = dataset.get_image_uint8(0).shape[:2]
        self.num_images, self.height, self.width = n, h, w
        self.void = 255 if dataset.class_set.num_classes < 255 else -1
        self.image = torch.empty((n, h, w, 3), dtype=torch.uint8)
        self.semantics = torch.empty((n, h, w), dtype=torch.uint8 if self.void == 255 else torch.int16)
        self.instance = torch.empty((n, h, w), dtype=torch.int16)
        self.confidence = torch.empty((n, h, w), dtype=torch.uint8)
        self.probability: Optional[Union[TopKDistributions, DenseDistributions]] = None
        self.depth: Optional[Tensor] = None
        """(n, H, W) float16 z-depth in scene units (0: none), when ``depth`` and the scene has depth maps."""
        self._class_pixels: Optional[Tensor] = None
        """Pixel indices grouped by label class, once :meth:`balance_classes` made R_S class-balanced."""
        with Progress(
            TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=CONSOLE
        ) as progress:
            for i in progress.track(range(n), total=n):
                image = dataset.get_image_uint8(i)
                if image.shape[:2] != (h, w):
                    raise PliftDataError(
                        f"image size {tuple(image.shape[:2])} differs from the first frame's {(h, w)}; "
                        "all frames must share one resolution",
                        dataset.image_filenames[i],
                    )
                data = dataset.read_labels(i, (h, w), probabilities=probabilities)
                self.image[i] = image[..., :3]
                sem = data["semantics"]
                self.semantics[i] = torch.where(sem < 0, self.void, sem)
                if int(data["instance"].max()) > torch.iinfo(self.instance.dtype).max:
                    self.instance = self.instance.to(torch.int32)
                self.instance[i] = data["instance"]
                self.confidence[i] = data["confidence"].clamp(0, 1).mul(255).round_()
                if "probability" in data:
                    if self.probability is None:
                        classes = data["probability"].shape[-1]
                        if compact is None:  # exact when it fits the budget
                            compact = n * h * w * classes * 2 > dense_max_gb * 2**30
                        store = TopKDistributions if compact else DenseDistributions
                        self.probability = store((n, h, w), classes)
                    self.probability.store(i, data["probability"])
                frame_depth = dataset.read_depth(i, (h, w)) if depth else None
                if frame_depth is not None:
                    if self.depth is None:
                        self.depth = torch.zeros((n, h, w), dtype=torch.float16)
                    self.depth[i] = frame_depth
        self.device = device
        dropped = dataset.frames_with_stuff_instances
        if dropped:
            first = dataset.image_filenames[min(dropped)]
            CONSOLE.print(
                f"[yellow]note:[/] instance ids on stuff or void pixels were ignored in {len(dropped)} of {n} frames "
                f"({sum(dropped.values())} pixels; first: {first.name}): instance ids belong to thing classes only."
            )

    def gather(self, indices: Int[Tensor, "N 3"]) -> Dict[str, Tensor]:
        """Batch entries for pixel ``indices`` = (image, y, x)."""
        c, y, x = indices.unbind(-1)
        semantics = self.semantics[c, y, x].long()
        batch = {
            "image": self.image[c, y, x].float().div_(255.0),
            "semantics": torch.where(semantics == self.void, -1, semantics),
            "instance": self.instance[c, y, x].long(),
            "confidence": self.confidence[c, y, x].float().div_(255.0),
        }
        if self.probability is not None:
            batch["probability"] = self.probability.gather(c, y, x)
        if self.depth is not None:
            batch["depth"] = self.depth[c, y, x].float()[:, None]
        return {k: v.to(self.device) for k, v in batch.items()}

    def balance_classes(self, exponent: float) -> None:
        """Make :meth:`sample_all` draw a pixel with probability ∝ (share of its label class)^(−exponent) (void is
        one more class): pick a class with probability ∝ count^(1 − exponent), then one of its pixels uniformly."""
        self._class_pixels = None
        if exponent == 0:
            return
        flat = self.semantics.reshape(-1)
        index_dtype = torch.int32 if flat.numel() < 2**31 else torch.int64
        values = torch.unique(flat)
        pixels = [torch.nonzero(flat == v).reshape(-1).to(index_dtype) for v in values]
        counts = torch.tensor([len(p) for p in pixels], dtype=torch.float64)
        self._class_pixels = torch.cat(pixels)
        self._class_count = counts.long()
        self._class_start = torch.cumsum(self._class_count, 0) - self._class_count
        self._class_probability = (counts ** (1.0 - exponent)).float()

    def sample_all(self, n: int, generator: Optional[torch.Generator] = None) -> Int[Tensor, "n 3"]:
        """``n`` pixels of any image: uniformly, or class-balanced after :meth:`balance_classes`."""
        if self._class_pixels is None:
            flat = torch.randint(0, self.num_images * self.height * self.width, (n,), generator=generator)
            return self._unflatten(flat)
        classes = torch.multinomial(self._class_probability, n, replacement=True, generator=generator)
        count = self._class_count[classes]
        within = (torch.rand(n, generator=generator, dtype=torch.float64) * count).long().clamp(max=count - 1)
        return self._unflatten(self._class_pixels[self._class_start[classes] + within].long())

    def sample_one_image(self, n: int, generator: Optional[torch.Generator] = None) -> Int[Tensor, "n 3"]:
        image = torch.randint(0, self.num_images, (1,), generator=generator)
        n = min(n, self.height * self.width)
        pixels = torch.randperm(self.height * self.width, generator=generator)[:n]
        return self._unflatten(image * self.height * self.width + pixels)

    def _unflatten(self, flat: Tensor) -> Int[Tensor, "n 3"]:
        hw = self.height * self.width
        return torch.stack([flat // hw, (flat % hw) // self.width, flat % self.width], dim=-1)


class PanopticDataManager(VanillaDataManager[PanopticDataset]):
    """Yields R_S ∪ R_I per step; the batch's first ``num_rays_semantic`` rays are R_S, the rest R_I (one image)."""

    config: PanopticDataManagerConfig
    train_pixels: FramePixels
    eval_pixels: FramePixels

    def __init__(
        self,
        config: PanopticDataManagerConfig,
        device: Union[torch.device, str] = "cpu",
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        **kwargs,
    ):
        self.instance_rays_from_step = 0
        """R_I is sampled from this step on (the model moves it to its instance-loss warm-up)."""
        super().__init__(config, device, test_mode, world_size, local_rank, **kwargs)

    @property
    def class_set(self):
        return self.train_dataset.class_set

    def setup_train(self) -> None:
        self.train_dataset.load_ground_truth = False
        self.train_pixels = FramePixels(
            self.train_dataset, self.device, "Loading training views", compact=self.config.compact_labels,
            dense_max_gb=self.config.dense_labels_max_gb, depth=self.config.load_depth,
        )
        self.train_pixels.balance_classes(self.config.class_balance)
        self.train_ray_generator = RayGenerator(self.train_dataset.cameras.to(self.device))

    def setup_eval(self) -> None:
        self.eval_dataset.load_probabilities = False
        self.eval_pixels = FramePixels(self.eval_dataset, self.device, "Loading evaluation views", probabilities=False)
        self.eval_ray_generator = RayGenerator(self.eval_dataset.cameras.to(self.device))
        self.fixed_indices_eval_dataloader = FixedIndicesEvalDataloader(
            input_dataset=self.eval_dataset, device=self.device, num_workers=0
        )
        self.eval_dataloader = RandIndicesEvalDataloader(input_dataset=self.eval_dataset, device=self.device, num_workers=0)

    def _batch(
        self, labels: FramePixels, generator: RayGenerator, n_semantic: int, n_instance: int
    ) -> Tuple[RayBundle, Dict]:
        parts = [labels.sample_all(n_semantic)]
        if n_instance > 0:
            parts.append(labels.sample_one_image(n_instance))
        indices = torch.cat(parts)
        batch = labels.gather(indices)
        batch["indices"] = indices
        batch["num_rays_semantic"] = n_semantic
        ray_bundle = generator(indices)
        is_instance = torch.zeros((len(indices), 1), dtype=torch.bool, device=ray_bundle.origins.device)
        is_instance[n_semantic:] = True
        ray_bundle.metadata["instance_ray"] = is_instance
        return ray_bundle, batch

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        self.train_count += 1
        n_instance = self.config.rays_instance if step >= self.instance_rays_from_step else 0
        return self._batch(self.train_pixels, self.train_ray_generator, self.config.rays_semantic, n_instance)

    def next_eval(self, step: int) -> Tuple[RayBundle, Dict]:
        self.eval_count += 1
        return self._batch(self.eval_pixels, self.eval_ray_generator, self.config.eval_num_rays_per_batch, 0)

    def get_train_rays_per_batch(self) -> int:
        return self.config.rays_semantic + self.config.rays_instance

    def get_eval_rays_per_batch(self) -> int:
        return self.config.eval_num_rays_per_batch


def rays_of(batch: Dict, key: str, part: Literal["semantic", "instance"]) -> Float[Tensor, "..."]:
    """The R_S (``semantic``) or R_I (``instance``) rows of a batch entry."""
    n = batch["num_rays_semantic"]
    return batch[key][:n] if part == "semantic" else batch[key][n:]
