#!/usr/bin/env bash
# Install the Debian packages a wakeword role needs; skip what is already there.
#
#   deploy/install-system-packages.sh runtime    # the daemon: PortAudio, libsndfile
#   deploy/install-system-packages.sh deploy     # + systemd-python build deps and the hooks' tools
#   deploy/install-system-packages.sh test       # + virtual microphone, TTS, systemd tools, broker, tmux
#   deploy/install-system-packages.sh training   # + every offline TTS engine and music synthesis
#
# Runs `apt-get update` only when something is missing, so a second run is fast.
set -euo pipefail

role=${1:-runtime}

runtime=(libportaudio2 libsndfile1 python3-venv)
systemd_build=(libsystemd-dev pkg-config gcc python3-dev)
hooks=(curl mosquitto-clients alsa-utils pulseaudio-utils)
test_extra=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils espeak-ng sox
            shellcheck systemd mosquitto mosquitto-clients strace tmux)
training_extra=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
                fluidsynth fluid-soundfont-gm sox)

case "$role" in
  runtime) wanted=("${runtime[@]}") ;;
  systemd) wanted=("${runtime[@]}" "${systemd_build[@]}") ;;
  deploy) wanted=("${runtime[@]}" "${systemd_build[@]}" "${hooks[@]}") ;;
  test) wanted=("${runtime[@]}" "${systemd_build[@]}" "${hooks[@]}" "${test_extra[@]}" "${training_extra[@]}") ;;
  training) wanted=("${runtime[@]}" "${training_extra[@]}") ;;
  *) echo "usage: $0 runtime|systemd|deploy|test|training" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "wakeword needs these Debian packages: ${missing[*]} (run this script as root)" >&2
    exit 1
  fi
else
  sudo_cmd=()
fi

echo "Installing Debian packages: ${missing[*]}" >&2
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
