"""Entry point ``nerfstudio.dataparser_configs`` → ``panoptic-data`` (light: see ``plift_ns.data.dataparser``)."""

from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from plift_ns.data.dataparser import PanopticDataParserConfig

panoptic_dataparser = DataParserSpecification(
    config=PanopticDataParserConfig(),
    description="plift-ns panoptic scenes: transforms.json + per-frame semantic/instance labels",
)
