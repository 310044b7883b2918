"""Our pipeline: nerfstudio's VanillaPipeline, built by every entry point (ns-train, ns-viewer, ns-render, plift-*)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Type

from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig

from plift_ns.checkpoints import allow_trusted_checkpoints

INDEXING_WARNING = r"Using a non-tuple sequence for multidimensional indexing"


def quiet_nerfstudio_indexing_warning() -> None:
    """Silence torch's "non-tuple sequence for multidimensional indexing" UserWarning raised inside nerfstudio's
    ``Cameras._generate_rays_from_coords`` (``self.fx[true_indices]`` with a list, nerfstudio/cameras/cameras.py,
    lines 601, 602, 669, 783 in 1.1.5) for every ray batch: every training step and every rendered image. The list is
    built inside nerfstudio, so no caller can avoid it. Only that message from that module is ignored."""
    warnings.filterwarnings(
        "ignore", message=INDEXING_WARNING, category=UserWarning, module=r"nerfstudio\.cameras\.cameras"
    )


@dataclass
class PanopticPipelineConfig(VanillaPipelineConfig):
    """VanillaPipelineConfig for our methods."""

    _target: Type = field(default_factory=lambda: PanopticPipeline)


class PanopticPipeline(VanillaPipeline):
    """VanillaPipeline that, when it is built, silences nerfstudio's per-ray-batch indexing warning and allow-lists
    our checkpoints' numpy scalars for weights-only ``torch.load``: every loader of a saved run (ns-train --load-dir,
    ns-viewer, ns-render, ns-eval and our plift-* commands through nerfstudio's ``eval_setup``) builds the pipeline
    before it loads the checkpoint."""

    def __init__(self, *args, **kwargs) -> None:
        quiet_nerfstudio_indexing_warning()
        allow_trusted_checkpoints()
        super().__init__(*args, **kwargs)
