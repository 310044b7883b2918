#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and installs plift-ns into it.
# Sourced by scripts/demo.sh and scripts/test.sh. PLIFT_VENV overrides the location (default: .venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PLIFT_VENV:-$ROOT/.venv}"
EXTRAS="${PLIFT_EXTRAS:-dev}"

if ! command -v uv >/dev/null 2>&1; then
  echo "[plift] installing uv (fast Python package installer)"
  python3 -m pip install -q uv || python3 -m pip install -q --user uv
  export PATH="$HOME/.local/bin:$PATH"
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[plift] creating virtual environment $VENV"
  uv venv -q -p python3 "$VENV"
fi
STAMP="$VENV/.plift-install-stamp"
WANT="$(cat "$ROOT/pyproject.toml" | sha1sum | cut -d' ' -f1)-$EXTRAS-bytecode"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[plift] installing plift-ns[$EXTRAS] and its pinned dependencies (first run downloads several GB)"
  uv pip install -q -p "$VENV/bin/python" -e "$ROOT[$EXTRAS]"
  # Byte-compile the installed packages once. uv does not by default, and where PYTHONDONTWRITEBYTECODE is set
  # Python never caches them either: every ns-train/plift-* start then recompiles nerfstudio and torch (~15 s of
  # each start on 2 cores). Some packages ship deliberately invalid template files, hence the ignored status.
  echo "[plift] byte-compiling the installed packages (once)"
  SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  "$VENV/bin/python" -m compileall -q -j 0 "$SITE" >/dev/null 2>&1 || true
  echo "$WANT" > "$STAMP"
fi
# ns-render needs an ffmpeg binary on PATH: use the one imageio-ffmpeg ships.
if [ ! -x "$VENV/bin/ffmpeg" ]; then
  ln -sf "$("$VENV/bin/python" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" "$VENV/bin/ffmpeg"
fi
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
# OpenMP threads that sleep instead of spinning: many times faster on a busy or small machine.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
