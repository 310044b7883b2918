"""COLMAP's stage and progress read from ``ns-process-data --verbose``'s log (for a live status line)."""

from __future__ import annotations

import re
from pathlib import Path

STAGES = (
    ("Done COLMAP bundle adjustment", "refining intrinsics"),
    ("Incremental mapping", "mapping (bundle adjustment)"),
    ("Done matching COLMAP features", "mapping (bundle adjustment)"),
    ("feature matching", "matching features"),
    ("Done extracting COLMAP features", "matching features"),
    ("Feature extraction", "extracting SIFT features"),
    ("Done copying images", "extracting SIFT features"),
)


def colmap_stage(log: Path, total: int, tail_bytes: int = 20000) -> str:
    """A short line such as ``matching features (block 2/3, 1/3)`` or ``mapping (42/120 photos registered)``."""
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return "starting"
    stage = "copying photos"
    for marker, name in STAGES:
        if marker in text:
            stage = name
            break
    detail = ""
    if stage.startswith("extracting"):
        found = re.findall(r"Processed file \[(\d+)/(\d+)\]", text)
        detail = f" ({found[-1][0]}/{found[-1][1]} photos)" if found else ""
    elif stage.startswith("matching"):
        found = re.findall(r"Matching (?:block|image) \[([^\]]+)\]", text)
        detail = f" ({found[-1]})" if found else ""
    elif stage.startswith("mapping"):
        found = re.findall(r"Registering image #\d+ \((\d+)\)", text)
        detail = f" ({found[-1]}/{total} photos registered)" if found else ""
    return stage + detail
