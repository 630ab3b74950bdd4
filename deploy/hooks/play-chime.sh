#!/usr/bin/env bash
# wakeword hook: play a short sound so you know you were heard.
#
# Settings (environment; put them in /etc/wakeword/hooks.env, which the unit reads):
#   WAKEWORD_CHIME_FILE     WAV to play (default /opt/wakeword/share/chime.wav, made by install.sh)
#   WAKEWORD_CHIME_PLAYER   paplay or aplay (default: paplay when a PulseAudio/PipeWire server
#                           answers, else aplay)
#   WAKEWORD_CHIME_DEVICE   ALSA device for aplay (e.g. plughw:1,0; default: ALSA's default)
# Set by wakeword for every detection: WAKEWORD_NAME, WAKEWORD_SCORE, WAKEWORD_TIME.
set -euo pipefail

file=${WAKEWORD_CHIME_FILE:-/opt/wakeword/share/chime.wav}
if [ ! -r "$file" ]; then
  echo "play-chime.sh: cannot read WAKEWORD_CHIME_FILE=$file" >&2
  exit 2
fi

player=${WAKEWORD_CHIME_PLAYER:-}
if [ -z "$player" ]; then
  if command -v paplay >/dev/null 2>&1 && command -v pactl >/dev/null 2>&1 && pactl info >/dev/null 2>&1; then
    player=paplay
  else
    player=aplay
  fi
fi

case "$player" in
  paplay) exec paplay "$file" ;;
  aplay)
    if [ -n "${WAKEWORD_CHIME_DEVICE:-}" ]; then
      exec aplay -q -D "$WAKEWORD_CHIME_DEVICE" "$file"
    fi
    exec aplay -q "$file"
    ;;
  *)
    echo "play-chime.sh: WAKEWORD_CHIME_PLAYER must be paplay or aplay, not '$player'" >&2
    exit 2
    ;;
esac
