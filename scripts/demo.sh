#!/usr/bin/env bash
# Install everything, then start lhlab on the bundled demo study (data in ./data).
# On a machine without a screen the demo runs a simulated participant on a virtual screen.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if .venv/bin/python -c "import gui.launcher" 2>/dev/null; then
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    exec .venv/bin/lhlab launch --data-dir data --protocols protocols
  fi
  echo "lhlab demo: no screen found (DISPLAY is not set); opening the launcher on a virtual screen is pointless,"
  echo "so a simulated participant runs the demo study instead. On a lab PC this command opens the launcher."
fi
label="demo$(date +%Y%m%d%H%M%S)"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/lhlab run protocols/demo.yaml --participant "$label" --condition unsolvable --data-dir data --windowed
fi
echo "lhlab demo: no screen found; running the demo with a simulated participant on a virtual screen (Xvfb)."
xvfb-run -a -s "-screen 0 1280x1024x24 -nolisten tcp" .venv/bin/lhlab run protocols/demo.yaml \
  --participant "$label" --condition unsolvable --data-dir data --simulate default --mode visual --speed 10 --windowed \
  | .venv/bin/python -c "
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e['event'] in ('phase_start', 'session_end') or (e['event'] == 'trial' and e.get('phase') == 'test'):
        print(f\"  {e['event']:<13} {e.get('phase', ''):<16} {e.get('trial', '')!s:>3} {e.get('outcome', e.get('status', ''))}\")
"
echo "lhlab demo: done. Data: data/demo/sub-$label/  (inspect with: .venv/bin/lhlab status data/demo)"
