#!/usr/bin/env bash
# Fetch the official FHIR R4 examples (npm package hl7.fhir.r4.examples@4.0.1, CC0) that the
# tests compare PulseBridge's Observations with. Idempotent: does nothing when they are there.
set -euo pipefail
cd "$(dirname "$0")/.."
package="hl7.fhir.r4.examples@4.0.1"
target=".cache/fhir-r4-examples"
marker="$target/.complete-4.0.1"

if [ -f "$marker" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing npm (to fetch $package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  else
    echo "setup: npm is needed to fetch $package: install Node.js and npm" >&2
    exit 1
  fi
fi
echo "setup: fetching $package"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null 2>"$work/npm.log") || {
  echo "setup: npm pack $package failed:" >&2
  tail -5 "$work/npm.log" >&2
  exit 1
}
rm -rf "$target"
mkdir -p "$target"
tar -xzf "$work"/hl7.fhir.r4.examples-4.0.1.tgz -C "$target" --strip-components=1 --wildcards 'package/Observation-*.json' 'package/package.json'
touch "$marker"
echo "setup: $(find "$target" -name 'Observation-*.json' | wc -l) example Observations in $target"
