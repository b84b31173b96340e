#!/usr/bin/env bash
# Fetch the dashboard's chart library, uPlot (MIT), from the npm registry with `npm pack`, check
# the tarball against the integrity the registry published for this pinned version, and put
# the minified build, its stylesheet and its licence where the package ships them
# (gateway/dashboard/static/vendor/, gitignored; setuptools package data includes it).
# Idempotent: does nothing when this version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
version="1.6.32"
integrity="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
target="gateway/dashboard/static/vendor"
marker="$target/.uplot-$version"

if [ -f "$marker" ] && [ -f "$target/uPlot.iife.min.js" ] && [ -f "$target/uPlot.min.css" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing npm (to fetch uplot@$version)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  else
    echo "setup: npm is needed to fetch uplot@$version: install Node.js and npm" >&2
    exit 1
  fi
fi
echo "setup: fetching uplot@$version"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$version" >/dev/null 2>"$work/npm.log") || {
  echo "setup: npm pack uplot@$version failed:" >&2
  tail -5 "$work/npm.log" >&2
  exit 1
}
tarball="$work/uplot-$version.tgz"
actual="sha512-$(python3 -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
if [ "$actual" != "$integrity" ]; then
  echo "setup: uplot-$version.tgz does not match its pinned integrity ($actual): refusing it" >&2
  exit 1
fi
mkdir -p "$work/x"
tar -xzf "$tarball" -C "$work/x" package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE
rm -f "$target"/.uplot-* "$target"/uPlot.*
mkdir -p "$target"
cp "$work/x/package/dist/uPlot.iife.min.js" "$work/x/package/dist/uPlot.min.css" "$target/"
cp "$work/x/package/LICENSE" "$target/uPlot.LICENSE"
touch "$marker"
echo "setup: uPlot $version in $target"
