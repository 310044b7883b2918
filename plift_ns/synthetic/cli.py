"""``plift-synth``: generate a synthetic indoor panoptic scene with simulated machine labels.

Example::

    plift-synth --preset demo --output scenes/demo --seed 3 --noise.p-confuse 0.2 --overwrite

``--preset`` picks the defaults (tiny/ci, demo, bench); every other flag overrides one field of the preset.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional, Sequence

import tyro
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typing_extensions import Annotated

from plift_ns.errors import data_error_status
from plift_ns.synthetic.config import PRESETS, SynthConfig, preset
from plift_ns.synthetic.writer import generate_scene

PresetName = Literal["tiny", "ci", "demo", "bench", "scannet-size"]


@dataclass
class SynthArgs:
    """Generate a synthetic indoor panoptic scene (images, depth, GT and noisy machine labels)."""

    output: Path
    """Scene folder to write (must be empty or absent unless --overwrite)."""
    preset: PresetName = "demo"
    """Size preset providing the defaults: tiny/ci (64x48, 12+4 views), demo (160x120, 96+24), bench (320x240, 120+30),
    scannet-size (640x480, 1000+100: a real-size scene for memory checks)."""
    overwrite: bool = False
    """Replace a non-empty output folder."""
    preview: Optional[Path] = None
    """Also write a preview PNG (RGB | GT sem | machine sem | GT inst | machine inst) to this path."""
    config: Annotated[SynthConfig, tyro.conf.arg(name="")] = field(default_factory=SynthConfig)


def _preset_from_argv(argv: Sequence[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="demo")
    known, _ = pre.parse_known_args(list(argv))
    return str(known.preset)


def parse_args(argv: Optional[Sequence[str]] = None) -> SynthArgs:
    """Parse the command line; the chosen preset supplies the defaults of all :class:`SynthConfig` fields."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _preset_from_argv(argv)
    if name not in PRESETS:
        name = "demo"  # let tyro report the invalid choice
    default = SynthArgs(output=tyro.MISSING, preset=name, config=preset(name))  # type: ignore[arg-type]
    return tyro.cli(SynthArgs, args=argv, default=default, prog="plift-synth")


def _summary(console: Console, args: SynthArgs, seconds: float, out: Path) -> None:
    import json

    noise = json.loads((out / "noise.json").read_text())
    cfg = args.config
    console.print(
        f"[bold green]wrote[/] {out}  ({cfg.num_train} train + {cfg.num_test} test views, "
        f"{cfg.width}x{cfg.height}, {seconds:.1f} s)"
    )
    table = Table(title="measured label noise (all frames)", show_header=True)
    table.add_column("rate")
    table.add_column("value", justify="right")
    for key, value in noise["measured"].items():
        table.add_row(key, f"{value:.3f}")
    console.print(table)


def main(argv: Optional[List[str]] = None) -> int:
    """``plift-synth``; returns the exit status (2: bad input, one message)."""
    args = parse_args(argv)
    console = Console()

    def generate() -> None:
        start = time.perf_counter()
        with Progress(TextColumn("rendering views"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("render", total=args.config.num_views)
            out = generate_scene(args.config, args.output, overwrite=args.overwrite,
                                 progress=lambda done, total: bar.update(task, completed=done))
        _summary(console, args, time.perf_counter() - start, out)
        if args.preview is not None:
            from plift_ns.synthetic.preview import save_preview

            console.print(f"preview: {save_preview(out, args.preview)}")

    return data_error_status("plift-synth", generate, console)
