#!/usr/bin/env bash
# Installs COLMAP (Debian's package, CPU SIFT) and the library nerfstudio's ns-process-data needs (open3d: libusb)
# when they are missing and apt-get is usable (root). Never fails: without them plift-wild says what to install.
# Usage: bash scripts/colmap.sh
set -uo pipefail
missing=()
command -v colmap >/dev/null 2>&1 || missing+=(colmap)
ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || missing+=(libusb-1.0-0)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[plift] installing ${missing[*]} (photos → poses for plift-wild)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
    || echo "[plift] could not install ${missing[*]}; plift-wild's COLMAP test will be skipped"
else
  echo "[plift] ${missing[*]} missing and apt-get is not usable here; plift-wild needs COLMAP (see README, 'From photos')"
fi
exit 0
