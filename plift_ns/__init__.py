"""plift-ns: Panoptic Lifting as a nerfstudio plugin."""

__version__ = "0.1.0"
