#!/usr/bin/env bash
# Set up (idempotent), then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
