#!/usr/bin/env bash
# Render a run's report.html to a PNG with headless Chromium, to look at it as a reader would.
# usage: scripts/render_report.sh RUN_DIR [OUT_PNG]      (Debian: apt-get install -y chromium)
set -euo pipefail
run=${1:?usage: $0 RUN_DIR [OUT_PNG]}
out=${2:-$run/report/page.png}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "error: no chromium found; install it with: apt-get install -y chromium" >&2
  exit 1
fi
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,5200 \
  --screenshot="$(realpath -m "$out")" "file://$(realpath "$run/report.html")" 2>/dev/null
echo "wrote $out"
