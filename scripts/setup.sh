#!/usr/bin/env bash
# Install everything lhlab needs on a fresh Debian/Ubuntu machine: the system libraries
# PsychoPy and Qt load at run time, Xvfb + PulseAudio for headless runs, and a virtual
# environment in .venv with lhlab and its Python dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  xvfb xauth xdotool libgl1 libgl1-mesa-dri libglx-mesa0 libegl1 libglu1-mesa libx11-6
  libxext6 libxi6 libxinerama1 libxxf86vm1 libxrandr2 libudev1 libxcb-cursor0 libxcb-icccm4
  libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxcb-randr0
  libxcb-xfixes0 libxcb-sync1 libxcb-shm0 libxcb-glx0 libxcb-util1 libxkbcommon0
  libxkbcommon-x11-0 libx11-xcb1 libdbus-1-3 libglib2.0-0 libfontconfig1 libfreetype6
  fonts-dejavu-core pulseaudio pulseaudio-utils libasound2 libasound2-plugins libportaudio2 pipewire pipewire-bin pipewire-pulse pipewire-jack wireplumber
  libjack-jackd2-0 libpulse0 ca-certificates procps python3-venv
  postgresql
)
EXTRA_APT=("$@")   # e.g. chromium for the report screenshot tests

missing() {  # the packages among "$@" that are not installed
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_install() {
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
need=($(missing "${APT_PACKAGES[@]}"))
extra=($(missing "${EXTRA_APT[@]}"))
if ((${#need[@]} + ${#extra[@]})); then
  echo "lhlab setup: installing system packages: ${need[*]} ${extra[*]}"
  $SUDO apt-get update -qq
fi
((${#need[@]})) && apt_install "${need[@]}"
if ((${#extra[@]})) && ! apt_install "${extra[@]}"; then
  # Optional extras (chromium renders the analysis report in one test): never block the set-up.
  echo "lhlab setup: warning: could not install ${extra[*]}; the tests that need them will say so and skip" >&2
fi

PY="${LHLAB_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "lhlab setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.lhlab-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "lhlab setup: installing Python packages (first time ~1-2 min)"
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".[test,stimuli]"; } \
      >"$log" 2>&1; then
    tail -40 "$log"
    echo "lhlab setup: pip install failed; the full log is in $log" >&2
    exit 1
  fi
  touch "$stamp"
fi
echo "lhlab setup: ready (.venv/bin/lhlab)"
