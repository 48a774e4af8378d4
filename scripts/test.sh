#!/usr/bin/env bash
# Set up a virtual environment with every extra (torch CPU build for the profiler) and run the whole test suite.
# Used by the README's test command and by .ci/run. Needs no GPU and no network beyond the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch==2.13.0 resolves to the CPU build (an unpinned torch would pull several GB of CUDA packages)
python -m pip install -q "torch==2.13.0" -e ".[profiler,dashboard,bench,dev]" playwright
# headless Chromium for the dashboard's browser test (Debian package); skipped by the test if unavailable
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed; browser test will be skipped"
fi
ruff check .  # lint (rules in pyproject.toml [tool.ruff.lint]); fails the run on any finding
mypy  # type-check estimator/ and hardware_db/ ([tool.mypy] in pyproject.toml); fails the run on any error
python -m pytest "$@"
