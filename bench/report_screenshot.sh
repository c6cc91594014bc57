#!/bin/sh
# Build a sample cohort, write its HTML report and screenshot it in headless Chromium.
#   bench/report_screenshot.sh [OUTPUT.png]   (default docs/report.png)
set -eu
cd "$(dirname "$0")/.."
out="${1:-docs/report.png}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
    echo "no Chromium found; install it (apt-get install -y chromium)" >&2
    exit 1
fi
python bench/report.py --people 40 --db "$work/sample.db" --html "$work/report.html"
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$work/profile" --screenshot="$out" --window-size=1000,1800 \
    "file://$work/report.html" 2>/dev/null
echo "wrote $out"
