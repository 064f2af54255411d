#!/usr/bin/env bash
# Install what the tests need (system packages included) and run the whole suite headless.
# The tests start their own Xvfb and PulseAudio (null sink); nothing needs a real screen or
# sound card. Extra arguments go to pytest, e.g. `bash scripts/test.sh -k window`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh chromium
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
