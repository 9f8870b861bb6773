#!/usr/bin/env bash
# Set up (idempotent), then run the demo: a real MindSpore Lite model on real images.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/fiftyone-mslite demo "$@"
