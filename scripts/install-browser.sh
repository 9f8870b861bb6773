#!/usr/bin/env bash
# Debian's chromium, for the headless App test (tests/browser/test_app_browser.py). Idempotent: a no-op when
# chromium is already installed. Needs root (or sudo) on Debian 12; downloads nothing but Debian packages.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium present: $(chromium --version 2>/dev/null || command -v chromium)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-browser: needs root or sudo to apt-get install chromium" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-liberation
echo "installed: $(chromium --version)"
