#!/usr/bin/env bash
# Installs what the tests need and runs the whole test suite: bash scripts/test.sh [pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
python -m pytest -q tests "$@"
