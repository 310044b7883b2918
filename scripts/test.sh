#!/usr/bin/env bash
# Installs what the tests need and runs the whole test suite: bash scripts/test.sh [pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
# The viewer's browser test drives headless Chromium: install it on Debian when we can (root, apt-get available).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[plift] installing chromium + chromium-driver for the viewer browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "[plift] could not install chromium; the browser test will be skipped"
  fi
fi
# plift-wild's end-to-end test needs COLMAP: install Debian's package where we can (skipped otherwise).
bash "$ROOT/scripts/colmap.sh"
python -m pytest -q tests "$@"
