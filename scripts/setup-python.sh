#!/usr/bin/env bash
# Create the project's virtualenv and install PulseBridge with its dev extras.
# Idempotent: the Makefile only calls it when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup: $python not found: install Python 3.11 or newer" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: PulseBridge needs Python 3.11 or newer, $python is $("$python" -V 2>&1)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian splits venv/ensurepip out of the interpreter package.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing python3-venv"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv"
      "$python" -m venv "$venv"
    else
      echo "setup: '$python -m venv' failed: install your distribution's venv package (python3-venv)" >&2
      exit 1
    fi
  fi
fi
echo "setup: installing pulsebridge[dev] into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
touch "$venv/.installed"
