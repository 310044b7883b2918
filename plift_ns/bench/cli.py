"""``plift-bench``: speed (and quality) benchmarks, printed as tables with ratios against peers run in the same run."""

from __future__ import annotations

import json
import platform
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import torch
import tyro
from rich.console import Console
from rich.table import Table
from typing_extensions import Annotated

from plift_ns.bench.speed import METHODS, measure

CONSOLE = Console(width=140)
SPEED_PRESETS = {"ci": ("demo", 8, 3), "full": ("bench", 30, 5)}
"""preset → (scene preset, timed steps, warm-up steps)."""


def machine_description() -> str:
    import os

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def ensure_scene(scene: Optional[Path], scene_preset: str, work: Path) -> Path:
    if scene is not None:
        return scene
    from plift_ns.synthetic import generate_scene, preset

    CONSOLE.print(f"[bold]Generating a '{scene_preset}' scene in {work}")
    return generate_scene(preset(scene_preset), work / f"scene-{scene_preset}")


@dataclass
class Speed:
    """Training rays/s, iterations/s, time to render 2048 rays and a test view, peak memory — per method."""

    preset: Literal["ci", "full"] = "ci"
    scene: Optional[Path] = None
    """Scene folder (default: generate one for the preset)."""
    methods: Tuple[str, ...] = METHODS
    device: Optional[str] = None
    """cuda / cpu (default: CUDA when available)."""
    output_dir: Path = Path("bench-results")

    def main(self) -> List[Dict[str, Any]]:
        scene_preset, steps, warmup = SPEED_PRESETS[self.preset]
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            scene = ensure_scene(self.scene, scene_preset, work)
            results = []
            for method in self.methods:
                CONSOLE.print(f"[bold]Timing {method} ({steps} steps after {warmup} warm-up) on {device}")
                results.append(measure(method, scene, work, steps, warmup, device))
        table = speed_markdown(results)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "speed.json").write_text(json.dumps({"machine": machine_description(), "results": results}, indent=2))
        (self.output_dir / "speed.md").write_text(f"# Speed ({date.today()}, {machine_description()})\n\n{table}\n")
        print_speed(results)
        CONSOLE.print(f"Wrote {self.output_dir / 'speed.json'} and speed.md")
        return results


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "–"


def speed_markdown(results: List[Dict[str, Any]]) -> str:
    ok = {r["method"]: r for r in results if "error" not in r}
    tensorf, nerfw = ok.get("tensorf"), ok.get("semantic-nerfw")
    lines = [
        "| method | rays/step | it/s | rays/s | rays/s vs tensorf | 2048 rays (ms) | render vs semantic-nerfw | test view (s) | peak MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['method']} | failed: {r['error']} |||||||| ")
            continue
        vs_tensorf = _ratio(r["rays_per_s"], tensorf["rays_per_s"]) if tensorf else "–"
        vs_nerfw = _ratio(nerfw["render_2048_ms"], r["render_2048_ms"]) if nerfw else "–"
        lines.append(
            f"| {r['method']} | {r['rays_per_step']} | {r['iters_per_s']:.2f} | {r['rays_per_s']:.0f} | {vs_tensorf} | "
            f"{r['render_2048_ms']:.1f} | {vs_nerfw} | {r['render_view_s']:.2f} | {r['peak_mem_mb']:.0f} |"
        )
    return "\n".join(lines)


def print_speed(results: List[Dict[str, Any]]) -> None:
    table = Table(title="plift-bench speed (ratios: against peers measured in this run)")
    header = speed_markdown(results).splitlines()[0].strip("|").split("|")
    for name in header:
        table.add_column(name.strip())
    for line in speed_markdown(results).splitlines()[2:]:
        table.add_row(*[c.strip() for c in line.strip().strip("|").split("|")][: len(header)])
    CONSOLE.print(table)


Commands = Union[Annotated[Speed, tyro.conf.subcommand("speed")]]


def entrypoint() -> None:
    """Console script ``plift-bench``."""
    tyro.cli(Commands).main()  # type: ignore[union-attr]


if __name__ == "__main__":
    entrypoint()
