#!/usr/bin/env bash
# Benchmarks with dated reports: bash scripts/bench.sh [ci|medium|full]
#   ci     — speed on the demo scene + quality on one tiny scene (simulated labels): about 15 min on 2 CPU cores
#   medium — also a from-scratch Mask2Former (plift-bench segmenter) and quality on a demo scene with its labels
#   full   — speed on a bench scene + quality on three bench scenes, all Table 2 variants, both label sources
# Results go to bench-results/<preset>/ and are copied to scripts/reports/<date>-<preset>-*.md/png.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
preset="${1:-ci}"
out="bench-results/$preset"
day="$(date +%F)"
speed_preset=ci
[ "$preset" = full ] && speed_preset=full
plift-bench speed --preset "$speed_preset" --output-dir "$out"
labels=(simulated)
if [ "$preset" != ci ]; then
  [ -d bench-results/segmenter ] || plift-bench segmenter --output bench-results/segmenter
  labels=(simulated mask2former mask2former-no-tta)
fi
plift-bench quality --preset "$preset" --labels "${labels[@]}" --segmenter bench-results/segmenter --output-dir "$out"
mkdir -p scripts/reports
cp "$out/speed.md" "scripts/reports/$day-$preset-speed.md"
cp "$out/quality.md" "scripts/reports/$day-$preset-quality.md"
cp "$out/quality.png" "scripts/reports/$day-$preset-quality.png"
echo "reports: scripts/reports/$day-$preset-{speed.md,quality.md,quality.png}"
