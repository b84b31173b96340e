#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser tests (Playwright drives it through
# executable_path; `playwright install` cannot download browsers here). Idempotent and quick
# when it is there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing chromium (browser tests)"
  log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1; then
    echo "setup: installing chromium failed:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  rm -f "$log"
else
  echo "setup: the browser tests need Debian's chromium at /usr/bin/chromium: apt-get install chromium" >&2
  exit 1
fi
