"""``plift-import``: convert a real dataset scene into the plift-ns data contract.

Examples::

    plift-import panoptic-lifting data/replica/room_0 scenes/replica_room_0
    plift-import replica Replica_Dataset/room_0/Sequence_1 scenes/room_0 --labels-from none --downscale 2
    plift-import scannet scans/scene0050_02 scenes/scene0050_02 --frame-step 10
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import tyro
from typing_extensions import Annotated

from plift_ns.errors import exit_on_data_error
from plift_ns.importers.panoptic_lifting import PanopticLiftingImport
from plift_ns.importers.replica import ReplicaImport
from plift_ns.importers.scannet import ScanNetImport
from plift_ns.importers.writer import CONSOLE

Importer = Union[
    Annotated[PanopticLiftingImport, tyro.conf.subcommand("panoptic-lifting")],
    Annotated[ReplicaImport, tyro.conf.subcommand("replica")],
    Annotated[ScanNetImport, tyro.conf.subcommand("scannet")],
]


def main(argv: Optional[Sequence[str]] = None) -> Path:
    """Parse ``argv`` (default: the command line), run the chosen importer, return the written scene folder."""
    args = tyro.cli(Importer, args=None if argv is None else list(argv), description=__doc__)  # type: ignore[arg-type]
    return args.main()


def entrypoint() -> None:
    """Console script ``plift-import``."""
    exit_on_data_error("plift-import", main, CONSOLE)


if __name__ == "__main__":
    entrypoint()
