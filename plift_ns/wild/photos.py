"""The photo folder given to ``plift-wild``: which images it holds (nerfstudio's own listing, so names line up with
``ns-process-data``'s ``frame_00001...`` renaming) and whether they can share one camera."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from PIL import Image

from plift_ns.errors import PliftDataError

MIN_PHOTOS = 3
"""Fewer photos cannot give a reconstruction worth training on."""


@dataclass(frozen=True)
class PhotoSet:
    """The photos of a capture in ``ns-process-data``'s order and their common size."""

    folder: Path
    paths: List[Path]
    size: Tuple[int, int]  # (width, height)

    def frame_names(self, prefix: str = "frame_") -> Dict[str, str]:
        """Photo path relative to the folder -> the file name ``ns-process-data`` gives its copy (1-indexed)."""
        return {p.relative_to(self.folder).as_posix(): f"{prefix}{i + 1:05d}{p.suffix}" for i, p in enumerate(self.paths)}


def list_photos(folder: Path) -> List[Path]:
    """Images of ``folder`` (recursive, sorted) exactly as ``ns-process-data images`` lists and numbers them."""
    from nerfstudio.process_data.process_data_utils import list_images

    return list_images(folder)


def check_photos(folder: Path, min_photos: int = MIN_PHOTOS) -> PhotoSet:
    """The photos of ``folder``; one readable error for a missing folder, too few photos, unreadable files or mixed
    sizes (one COLMAP camera and ``ns-process-data``'s batch downscaling need one size)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PliftDataError("photo folder not found (give the folder that holds the photos)", folder)
    paths = list_photos(folder)
    if len(paths) < min_photos:
        raise PliftDataError(
            f"{len(paths)} photos found (.jpg, .jpeg, .png, .tif); at least {min_photos} overlapping photos are needed",
            folder,
        )
    sizes: Dict[Path, Tuple[int, int]] = {}
    for path in paths:
        try:
            with Image.open(path) as im:
                sizes[path] = im.size
        except OSError as err:
            raise PliftDataError(f"cannot read photo ({err}); remove or replace it", path) from None
    counts = Counter(sizes.values())
    if len(counts) > 1:
        common = counts.most_common(1)[0][0]
        odd = next(p for p, s in sizes.items() if s != common)
        listing = ", ".join(f"{w}x{h}: {n}" for (w, h), n in counts.most_common())
        raise PliftDataError(
            f"photos have {len(counts)} different sizes ({listing}), e.g. {odd.relative_to(folder)} is "
            f"{sizes[odd][0]}x{sizes[odd][1]}; the capture is solved as one camera: resize or crop them to one size "
            f"({common[0]}x{common[1]}), or remove the odd ones (rotated portrait shots too)",
            folder,
        )
    return PhotoSet(folder=folder, paths=paths, size=next(iter(counts)))
