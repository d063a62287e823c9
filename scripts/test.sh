#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite: unit tests on tiny random models, plus
# the tests on real models and ../shared/data, which skip with a reason where those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
.venv/bin/ruff check .
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
[ "$status" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$status"
