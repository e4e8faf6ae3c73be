#!/usr/bin/env bash
# Install the real-model test bed (llama.cpp server + SmolLM2 in four precisions).
# Usage: PYTHON=.venv/bin/python bash example_suite/live/setup_testbed.sh [--models-dir DIR]
# PYTHON defaults to the python on PATH; everything is installed into that interpreter's env.
# First run compiles llama.cpp (~4-5 min on 2 cores); later runs take seconds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${PYTHON:-python}" "$here/setup_testbed.py" "$@"
