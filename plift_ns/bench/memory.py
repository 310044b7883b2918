"""Memory benchmark: peak RSS and load time of the training data for growing numbers of frames of one scene.

Each measurement runs in a fresh child process (its own peak RSS) that builds the panoptic datamanager exactly as
``ns-train`` does (training views with their label distributions, evaluation views without) and reports the load
time and the peak resident memory. ``baseline_src`` runs the same child on another checkout of plift-ns (e.g. an older
commit), so before/after are measured in one run on one machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from plift_ns.data.datamanager import PanopticDataManagerConfig
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
base = rss()
start = time.perf_counter()
dm = PanopticDataManagerConfig(data=Path(sys.argv[1])).setup(device="cpu", test_mode="val")
seconds = time.perf_counter() - start
print(json.dumps({"load_s": seconds, "peak_rss_mb": rss(), "rss_before_load_mb": base,
                  "train_frames": len(dm.train_dataset), "eval_frames": len(dm.eval_dataset)}))
"""


def subset_transforms(scene: Path, num_train: int, num_eval: Optional[int]) -> Path:
    """A transforms file beside the scene's own that lists its first ``num_train`` training frames (and the first
    ``num_eval`` test frames); paths stay relative to the scene folder."""
    meta = json.loads((scene / "transforms.json").read_text())
    train = meta["train_filenames"][:num_train]
    test = meta["test_filenames"][:num_eval] if num_eval else meta["test_filenames"]
    if len(train) < num_train:
        raise ValueError(f"{scene} has only {len(train)} training frames, {num_train} asked for")
    keep = set(train) | set(test)
    meta.update(frames=[f for f in meta["frames"] if f["file_path"] in keep], train_filenames=train, test_filenames=test)
    path = scene / f".plift-bench-memory-{num_train}.json"
    path.write_text(json.dumps(meta))
    return path


def measure_load(transforms: Path, source: Optional[Path] = None) -> Dict[str, Any]:
    """Load time and peak RSS of building the datamanager for ``transforms``, in a child process; ``source`` = the
    root of another plift-ns checkout to import instead of the installed one."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(transforms)], env=env, capture_output=True, text=True, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def memory_table(scene: Path, frames: Sequence[int], num_eval: Optional[int], baseline_src: Optional[Path],
                 progress: Any = print) -> List[Dict[str, Any]]:
    """Rows of (frames, version, load_s, peak_rss_mb) for every frame count; baseline first when given."""
    rows: List[Dict[str, Any]] = []
    for n in frames:
        path = subset_transforms(scene, n, num_eval)
        try:
            for version, source in (("before", baseline_src), ("after", None)):
                if version == "before" and source is None:
                    continue
                progress(f"loading {n} training frames ({version})")
                rows.append({"train_frames": n, "version": version, **measure_load(path, source)})
        finally:
            path.unlink(missing_ok=True)
    return rows


def memory_markdown(rows: List[Dict[str, Any]]) -> str:
    lines = ["| training frames | version | load time (s) | peak RSS (GB) | RSS before loading (GB) |",
             "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['train_frames']} | {r['version']} | – | – | {r['error']} |")
            continue
        lines.append(
            f"| {r['train_frames']} | {r['version']} | {r['load_s']:.1f} | {r['peak_rss_mb'] / 1024:.2f} "
            f"| {r['rss_before_load_mb'] / 1024:.2f} |"
        )
    return "\n".join(lines)
