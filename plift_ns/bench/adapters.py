"""Feeding a plift-ns scene to nerfstudio's stock ``semantic-nerfw`` (for the speed benchmark)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Type

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs, Semantics
from PIL import Image

from plift_ns.data.dataparser import PanopticDataParser, PanopticDataParserConfig


@dataclass
class SemanticAdapterDataParserConfig(PanopticDataParserConfig):
    """The panoptic dataparser plus nerfstudio's ``Semantics`` metadata (void written as class 0 into ``cache_dir``)."""

    _target: Type = field(default_factory=lambda: SemanticAdapterDataParser)
    cache_dir: Path = Path("/tmp")


class SemanticAdapterDataParser(PanopticDataParser):
    config: SemanticAdapterDataParserConfig

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs: Any) -> DataparserOutputs:
        outputs = super()._generate_dataparser_outputs(split, **kwargs)
        class_set = outputs.metadata["class_set"]
        folder = Path(self.config.cache_dir) / "semantics_novoid"
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for path in outputs.metadata["semantics_filenames"]:
            target = folder / path.name
            if not target.exists():
                labels = np.asarray(Image.open(path))
                Image.fromarray(np.where(labels == class_set.void_id, 0, labels).astype(np.uint8)).save(target)
            files.append(target)
        colors = torch.from_numpy(class_set.color_table()[:-1])
        outputs.metadata["semantics"] = Semantics(filenames=files, classes=list(class_set.names), colors=colors)
        return outputs
