#!/usr/bin/env bash
# Screenshot a report's index.html in headless Chromium, to check how the page really looks.
#
#   scripts/screenshot_report.sh runs/<id>/report/index.html [out.png] [width] [height]
#
# Writes out.png (default: ./screenshot.png) at width x height pixels
# (default 1280 x 2000; give a larger height to see more of a long page). Installs Debian's
# chromium with apt-get when it is missing (needs root). The page is opened from disk with
# networking features off: a report must render without any network access.
set -euo pipefail

page=${1:?usage: $0 INDEX_HTML [OUT_PNG] [WIDTH] [HEIGHT]}
out=${2:-screenshot.png}
width=${3:-1280}
height=${4:-2000}

[ -f "$page" ] || { echo "error: $page: no such file" >&2; exit 2; }

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "chromium not found; installing Debian's package (apt-get install -y chromium)" >&2
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
    browser=$(command -v chromium)
fi

page_url="file://$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"
case $out in /*) ;; *) out="$PWD/$out" ;; esac
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --window-size="$width,$height" \
    --screenshot="$out" "$page_url" 2>/dev/null

[ -s "$out" ] || { echo "error: chromium wrote no screenshot" >&2; exit 1; }
echo "$out"
