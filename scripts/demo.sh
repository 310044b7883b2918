#!/usr/bin/env bash
# The main job on the embedded demo scene: install (if needed) → generate the scene → train → evaluate → render a
# panoptic video. Usage: bash scripts/demo.sh [extra ns-train arguments]
# Environment: PLIFT_DEMO_STEPS (training iterations, default 500: with the scene's depth maps the field converges
# within a few hundred steps; see README "Benchmarks"), PLIFT_DEMO_DIR (default: data/plift-demo).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
SCENE="${PLIFT_DEMO_DIR:-data/plift-demo}"
STEPS="${PLIFT_DEMO_STEPS:-500}"

echo "[plift] 1/4 generating the demo scene in $SCENE"
if [ ! -f "$SCENE/transforms.json" ]; then
  plift-synth --preset demo --output "$SCENE" --preview "$SCENE/preview.png"
else
  echo "[plift]     (exists, reusing it)"
fi

echo "[plift] 2/4 training panoptic-lifting-small for $STEPS iterations, then 3/4 evaluating and 4/4 rendering a"
echo "[plift]     panoptic video in the same process (the trained model is already in memory)"
RUN_ROOT="outputs/$(basename "$SCENE")/panoptic-lifting-small"
mkdir -p renders
VIDEO="renders/$(basename "$SCENE")-panoptic.mp4"
ns-train panoptic-lifting-small --data "$SCENE" --output-dir outputs --vis tensorboard \
  --max-num-iterations "$STEPS" --steps-per-save "$STEPS" \
  --evaluate-after-training True --video-after-training "$VIDEO" "$@"
CONFIG="$(ls -td "$RUN_ROOT"/*/ | head -n 1)config.yml"
# The same evaluation and video from the saved run, in a process of their own:
#   plift-eval --load-config "$CONFIG" --video-path "$VIDEO" --interpolation-steps 4 --frame-rate 12
# or the video alone: ns-render interpolate --load-config "$CONFIG" --interpolation-steps 4 --frame-rate 12 \
#   --rendered-output-names rgb semantics_colormap instance_colormap panoptic --output-path "$VIDEO"

echo "[plift] done: metrics in $(dirname "$CONFIG")/plift_eval/metrics.json, video in $VIDEO"
