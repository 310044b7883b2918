"""``plift-bench``: speed (and quality) benchmarks, printed as tables with ratios against peers run in the same run."""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import torch
import tyro
from rich.console import Console
from rich.table import Table
from typing_extensions import Annotated

from plift_ns.bench.quality import VARIANTS
from plift_ns.bench.segmenter import Backbone
from plift_ns.bench.speed import METHODS, measure
from plift_ns.bench.wild import WildBench
from plift_ns.devices import default_device

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
    quality_steps: int = 0
    """Also measure time to quality: train each of --quality-methods this many steps, scoring the test views every
    --eval-every steps outside the clock (0: throughput only)."""
    quality_methods: Tuple[str, ...] = ("panoptic-lifting-small", "tensorf")
    eval_every: int = 250
    quality_seconds: float = 0.0
    """Stop each time-to-quality run after this much training wall-clock (0: run all --quality-steps)."""
    baseline_src: Optional[Path] = None
    """Another plift-ns checkout (e.g. an older commit) whose panoptic-lifting-small is timed beside this one's."""

    def main(self) -> List[Dict[str, Any]]:
        scene_preset, steps, warmup = SPEED_PRESETS[self.preset]
        device = self.device or default_device().type
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            scene = ensure_scene(self.scene, scene_preset, work)
            results = []
            for method in self.methods:
                CONSOLE.print(f"[bold]Timing {method} ({steps} steps after {warmup} warm-up) on {device}")
                results.append(measure(method, scene, work, steps, warmup, device))
            if self.quality_steps > 0:
                self._time_to_quality(scene, device)
        table = speed_markdown(results)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "speed.json").write_text(json.dumps({"machine": machine_description(), "results": results}, indent=2))
        (self.output_dir / "speed.md").write_text(f"# Speed ({date.today()}, {machine_description()})\n\n{table}\n")
        print_speed(results)
        CONSOLE.print(f"Wrote {self.output_dir / 'speed.json'} and speed.md")
        return results


    def _time_to_quality(self, scene: Path, device: str) -> List[Dict[str, Any]]:
        from plift_ns.bench.time_to_quality import run_method, ttq_markdown, ttq_plot

        runs = [(m, None, m) for m in self.quality_methods]
        if self.baseline_src is not None:
            runs.insert(0, ("panoptic-lifting-small", self.baseline_src, "panoptic-lifting-small (baseline)"))
        results = []
        for method, source, label in runs:
            CONSOLE.print(f"[bold]Time to quality: {label}, {self.quality_steps} steps, scored every {self.eval_every}")
            results.append(run_method(method, scene, self.quality_steps, self.eval_every, device, source, label,
                                      self.quality_seconds))
            self._write_ttq(results, ttq_markdown, ttq_plot)  # kept after every method: a stopped run keeps its rows
        print_markdown_table(ttq_markdown(results), "time to quality (training wall-clock, same run)")
        return results

    def _write_ttq(self, results: List[Dict[str, Any]], markdown: Any, plot: Any) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        record = {"machine": machine_description(), "steps": self.quality_steps, "results": results}
        (self.output_dir / "time-to-quality.json").write_text(json.dumps(record, indent=2))
        (self.output_dir / "time-to-quality.md").write_text(
            f"# Time to quality ({date.today()}, {machine_description()})\n\n{markdown(results)}\n"
        )
        plot(results, self.output_dir / "time-to-quality.png")


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


@dataclass(frozen=True)
class QualityPreset:
    scene_preset: str
    num_scenes: int
    steps: int
    eval_every: int
    variants: Tuple[str, ...]
    scene_size: Optional[Tuple[int, int, int, int]] = None
    """(width, height, train views, test views) overriding the scene preset's."""


QUALITY_PRESETS = {
    "ci": QualityPreset("demo", 1, 800, 400, ("full", "no segment consistency", "all off"), (96, 72, 48, 8)),
    "medium": QualityPreset("demo", 2, 500, 500, tuple(VARIANTS)),
    "full": QualityPreset("bench", 3, 4000, 500, tuple(VARIANTS)),
}
"""ci: minutes on 2 CPU cores (a smoke run); medium: two demo-size scenes, 500 steps (with their depth maps the
small variant has converged by then; about an hour on 2 CPU cores); full: three bench scenes (hours on a CPU)."""
HEADLINE = ("mIoU", "PQ_scene", "SQ_scene", "RQ_scene", "PQ", "PSNR")


@dataclass
class Quality:
    """2D labels vs the oracle vote (plift-fusion: the labels fused in 3D with the exact depth, no field) vs the lifted
    model vs the paper's Table 2 ablations, on generated scenes whose 2D labels are the simulated machine labels
    (TTA-like confidences) and/or the predictions of a from-scratch Mask2Former."""

    preset: Literal["ci", "medium", "full"] = "ci"
    """ci: one small scene, 800 steps, 3 variants (minutes); medium: two demo-size scenes, 500 steps; full: three
    bench scenes, 4000 steps (see QUALITY_PRESETS)."""
    variants: Optional[Tuple[str, ...]] = None
    """Table 2 variants to train (default: the preset's); choose from plift_ns.bench.quality.VARIANTS."""
    labels: Tuple[Literal["simulated", "mask2former", "mask2former-no-tta"], ...] = ("simulated",)
    """2D label sources to lift (mask2former: plift-labels with TTA; mask2former-no-tta: one pass per image)."""
    segmenter: Optional[Path] = None
    """Folder of a segmenter written by ``plift-bench segmenter`` (default: train one on disjoint scenes first)."""
    steps: Optional[int] = None
    """Training steps per run (default: the preset's)."""
    num_scenes: Optional[int] = None
    """Number of scenes (default: the preset's)."""
    device: Optional[str] = None
    output_dir: Path = Path("bench-results")
    first_seed: int = 100
    """Scenes use seeds first_seed, first_seed + 1, ... (the demo scene uses seed 0, segmenter scenes 1000+)."""

    def main(self) -> Dict[str, Any]:
        from rich.progress import Progress

        from plift_ns.bench.quality import relabel_scene, time_to_quality, train_variant
        from plift_ns.eval.fusion import oracle_vote
        from plift_ns.synthetic import generate_scene, preset

        chosen = QUALITY_PRESETS[self.preset]
        scene_preset, variants = chosen.scene_preset, self.variants or chosen.variants
        steps = self.steps or chosen.steps
        num_scenes = self.num_scenes or chosen.num_scenes
        eval_every = min(chosen.eval_every, steps)
        device = self.device or default_device().type
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
        runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {
            source: {name: [] for name in ("2D labels", "oracle vote", *variants)} for source in self.labels
        }
        with tempfile.TemporaryDirectory() as tmp, Progress(console=CONSOLE) as progress:
            segmenter = self.segmenter
            if segmenter is None and any(source != "simulated" for source in self.labels):
                segmenter = Segmenter(scene_preset=scene_preset, output=self.output_dir / "segmenter", device=device).main()
            for i in range(num_scenes):
                config = preset(scene_preset)
                config.seed = self.first_seed + i
                config.noise.tta_like = True
                if chosen.scene_size is not None:
                    config.width, config.height, config.num_train, config.num_test = chosen.scene_size
                base = generate_scene(config, Path(tmp) / f"scene-{i}")
                for source in self.labels:
                    scene = base
                    if source != "simulated":
                        assert segmenter is not None
                        task = progress.add_task(f"scene {i + 1}/{num_scenes}: plift-labels ({source})", total=None)
                        scene = relabel_scene(base, Path(tmp) / f"scene-{i}-{source}", segmenter, tta=source == "mask2former")
                        progress.update(task, total=1, completed=1)
                    runs[source]["oracle vote"].append(_headline(oracle_vote(scene)["oracle_vote"]))
                    for name in variants:
                        task = progress.add_task(f"scene {i + 1}/{num_scenes} ({source}): {name}", total=steps)
                        result = train_variant(
                            scene, VARIANTS[name], steps, eval_every, device,
                            lambda s, t=task: progress.update(t, completed=s + 1),
                        )
                        runs[source][name].append(
                            {**_headline(result.metrics), "train_s": result.train_seconds,
                             "time_to_95pct_PQ_scene_s": time_to_quality(result.curve), "curve": result.curve}
                        )
                        if name == variants[0]:
                            runs[source]["2D labels"].append(_headline(result.labels_2d))
                        # Rewritten after every run, so a long benchmark that is stopped keeps what it measured.
                        self._write(runs, steps, num_scenes, scene_preset, segmenter, complete=False)
        report = self._write(runs, steps, num_scenes, scene_preset, segmenter, complete=True)
        for source, rows in report["summary"].items():
            print_markdown_table(quality_markdown(rows), f"plift-bench quality, 2D labels: {source} (percent; PSNR in dB)")
        CONSOLE.print(f"Wrote {self.output_dir}/quality.json, quality.md, quality.png")
        return report

    def _write(
        self, runs: Dict[str, Dict[str, List[Dict[str, Any]]]], steps: int, num_scenes: int, scene_preset: str,
        segmenter: Optional[Path], complete: bool,
    ) -> Dict[str, Any]:
        """quality.json and quality.md (and, once complete, quality.png) from the runs so far."""
        summary = {source: {name: _mean(rows) for name, rows in by_name.items()} for source, by_name in runs.items()}
        done = max((len(rows) for by_name in runs.values() for rows in by_name.values()), default=0)
        report = {"machine": machine_description(), "preset": self.preset, "steps": steps, "scenes": num_scenes,
                  "scene_preset": scene_preset, "segmenter": None if segmenter is None else str(segmenter),
                  "complete": complete, "summary": summary, "runs": runs}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "quality.json").write_text(json.dumps(report, indent=2, default=float))
        sections = [f"## 2D labels: {source}\n\n{quality_markdown(rows)}" for source, rows in summary.items()]
        status = "" if complete else f" — INCOMPLETE: {done} of {num_scenes} scene(s) so far"
        (self.output_dir / "quality.md").write_text(
            f"# Quality ({date.today()}, preset {self.preset}: {num_scenes} '{scene_preset}' scene(s), {steps} steps; "
            f"{machine_description()}){status}\n\n" + "\n\n".join(sections) + "\n"
        )
        if complete:
            quality_plot(summary, self.output_dir / "quality.png")
        return report


@dataclass
class Segmenter:
    """Train a small Mask2Former from scratch on generated scenes that share no seed with the benchmark scenes; the
    folder it writes is a ``plift-labels --model`` checkpoint (class map ``identity``)."""

    output: Path = Path("bench-results/segmenter")
    scene_preset: str = "demo"
    """Size preset of the training scenes (their train and test views are all used)."""
    num_scenes: int = 20
    """Training scenes (seeds first_seed, first_seed + 1, ...; 120 frames each in the demo preset)."""
    first_seed: int = 1000
    steps: int = 1500
    batch_size: int = 8
    backbone: Backbone = "resnet"
    device: Optional[str] = None

    def main(self) -> Path:
        from rich.progress import Progress

        from plift_ns.bench.segmenter import SegmenterTrainConfig, train_segmenter
        from plift_ns.synthetic import generate_scene, preset

        device = self.device or default_device().type
        with tempfile.TemporaryDirectory() as tmp, Progress(console=CONSOLE) as progress:
            scenes = []
            for i in range(self.num_scenes):
                config = preset(self.scene_preset)
                config.seed = self.first_seed + i
                scenes.append(generate_scene(config, Path(tmp) / f"train-scene-{i}"))
            task = progress.add_task("training Mask2Former from scratch", total=self.steps)
            config = SegmenterTrainConfig(backbone=self.backbone, steps=self.steps, batch_size=self.batch_size)
            start = time.perf_counter()
            train_segmenter(
                scenes, self.output, config, device=device,
                progress=lambda step, loss: progress.update(task, completed=step + 1, description=f"Mask2Former loss {loss:.2f}"),
            )
        CONSOLE.print(f"Wrote {self.output} ({time.perf_counter() - start:.0f} s on {device})")
        return self.output


def _headline(metrics: Dict[str, Any]) -> Dict[str, Optional[float]]:
    return {key: (None if metrics.get(key) is None else float(metrics[key])) for key in HEADLINE}


def _mean(rows: List[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """Mean of each headline metric over the scenes, and ``<metric>_spread``: half the range (max − min) / 2 when
    there are two or more."""
    out: Dict[str, Optional[float]] = {}
    for key in (*HEADLINE, "train_s", "time_to_95pct_PQ_scene_s"):
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = sum(values) / len(values) if values else None
        if key in HEADLINE:
            out[f"{key}_spread"] = (max(values) - min(values)) / 2 if len(values) > 1 else None
    return out


def quality_markdown(summary: Dict[str, Dict[str, Optional[float]]]) -> str:
    full = summary.get("full", {})
    lines = ["| | " + " | ".join(HEADLINE) + " | Δ mIoU vs full | Δ PQ^scene vs full | train s | s to 95% PQ^scene |",
             "|---" * (len(HEADLINE) + 5) + "|"]
    def fmt(row: Dict[str, Optional[float]], key: str) -> str:
        v, spread = row.get(key), row.get(f"{key}_spread")
        if v is None:
            return "–"
        text = f"{v:.2f}" if key == "PSNR" else f"{100 * v:.1f}"
        if spread is not None:
            text += f" ± {spread:.2f}" if key == "PSNR" else f" ± {100 * spread:.1f}"
        return text

    def delta(row: Dict[str, Optional[float]], key: str) -> str:
        a, b = row.get(key), full.get(key)
        return "–" if a is None or b is None else f"{100 * (a - b):+.1f}"

    for name, row in summary.items():
        secs = [row.get("train_s"), row.get("time_to_95pct_PQ_scene_s")]
        lines.append(f"| {name} | " + " | ".join(fmt(row, k) for k in HEADLINE) + f" | {delta(row, 'mIoU')} | {delta(row, 'PQ_scene')} | "
                     + " | ".join("–" if s is None else f"{s:.0f}" for s in secs) + " |")
    return "\n".join(lines)


def quality_plot(summary: Dict[str, Dict[str, Dict[str, Optional[float]]]], path: Path) -> None:
    """Bar plot of mIoU and PQ^scene: one panel per 2D label source, one pair of bars per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(10 * len(summary), 4), squeeze=False)
    width = 0.38
    for ax, (source, rows) in zip(axes[0], summary.items()):
        names = list(rows)
        for k, key in enumerate(("mIoU", "PQ_scene")):
            values = [100 * (rows[n].get(key) or 0.0) for n in names]
            ax.bar([i + (k - 0.5) * width for i in range(len(names))], values, width, label=key)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
        ax.set_ylabel("percent")
        ax.set_title(f"2D labels ({source}) vs lifted vs ablations")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_markdown_table(markdown: str, title: str) -> None:
    lines = markdown.splitlines()
    table = Table(title=title)
    header = [c.strip() for c in lines[0].strip().strip("|").split("|")]
    for name in header:
        table.add_column(name)
    for line in lines[2:]:
        table.add_row(*[c.strip() for c in line.strip().strip("|").split("|")][: len(header)])
    CONSOLE.print(table)


@dataclass
class Memory:
    """Peak RSS and load time of the training data for growing numbers of frames (``plift-synth --preset
    scannet-size`` makes a real-size scene); ``--baseline-src`` measures another checkout beside this one."""

    scene: Path
    """Scene folder with at least max(--frames) training frames."""
    frames: Tuple[int, ...] = (100, 300, 1000)
    """Numbers of training frames to load."""
    eval_frames: Optional[int] = 100
    """Evaluation frames loaded alongside (None: all of the scene's test frames)."""
    baseline_src: Optional[Path] = None
    """Root of another plift-ns checkout (e.g. ``git worktree add /tmp/old <commit>``) measured as 'before'."""
    output_dir: Path = Path("bench-results")

    def main(self) -> List[Dict[str, Any]]:
        from plift_ns.bench.memory import memory_markdown, memory_table

        rows = memory_table(self.scene, self.frames, self.eval_frames, self.baseline_src,
                            progress=lambda text: CONSOLE.print(f"[bold]{text}"))
        table = memory_markdown(rows)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "memory.json").write_text(json.dumps({"machine": machine_description(), "rows": rows}, indent=2))
        (self.output_dir / "memory.md").write_text(f"# Memory ({date.today()}, {machine_description()})\n\n{table}\n")
        print_markdown_table(table, "training-data memory")
        CONSOLE.print(f"Wrote {self.output_dir / 'memory.json'} and memory.md")
        return rows


@dataclass
class Viewer:
    """Seconds per viewer frame (512 px on the longer side) of a trained run along each rendering path (per-sample
    density and shading; the summed density volume; depth-guided sampling; merged shading; the viewer's own frame,
    filled in from anchor pixels), measured alternately in one process."""

    load_config: Path
    longer_side: int = 512
    repeats: int = 3
    output_dir: Path = Path("bench-results")

    def main(self) -> Dict[str, Any]:
        from plift_ns.bench.viewer import viewer_frame_times

        result = viewer_frame_times(self.load_config, self.longer_side, self.repeats)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        record = {"machine": machine_description(), "load_config": str(self.load_config), **result}
        (self.output_dir / "viewer.json").write_text(json.dumps(record, indent=2))
        w, h = result["pixels"]
        for name, seconds in result["seconds"].items():
            agree = result["agreement_with_plain"][name]
            CONSOLE.print(
                f"viewer frame {w}x{h}, {name}: {seconds:.2f} s ({_ratio(result['seconds']['plain'], seconds)} faster "
                f"than plain); against plain: rgb PSNR {agree['rgb_psnr']:.1f} dB, classes "
                f"{100 * agree['same_class']:.2f}%, ids {100 * agree['same_surrogate_id']:.2f}%"
            )
        return result


Commands = Union[
    Annotated[Speed, tyro.conf.subcommand("speed")],
    Annotated[Quality, tyro.conf.subcommand("quality")],
    Annotated[Segmenter, tyro.conf.subcommand("segmenter")],
    Annotated[Memory, tyro.conf.subcommand("memory")],
    Annotated[Viewer, tyro.conf.subcommand("viewer")],
    Annotated[WildBench, tyro.conf.subcommand("wild")],
]


def entrypoint() -> None:
    """Console script ``plift-bench``."""
    tyro.cli(Commands).main()  # type: ignore[union-attr]


if __name__ == "__main__":
    entrypoint()
