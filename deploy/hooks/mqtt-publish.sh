#!/usr/bin/env bash
# wakeword hook: publish the detection as JSON to an MQTT topic with mosquitto_pub
# (apt install mosquitto-clients).
#
# Settings (environment; put them in /etc/wakeword/hooks.env, which the unit reads):
#   WAKEWORD_MQTT_HOST      broker host (default localhost)
#   WAKEWORD_MQTT_PORT      broker port (default 1883)
#   WAKEWORD_MQTT_TOPIC     topic (default wakeword/<wake word>/detected)
#   WAKEWORD_MQTT_QOS       0, 1 or 2 (default 1)
#   WAKEWORD_MQTT_USERNAME  optional user name (same variables as the built-in mqtt: integration)
#   WAKEWORD_MQTT_PASSWORD  optional password (visible in /proc to the same user only:
#                           the system unit hides other users' processes, ProtectProc=invisible)
#   WAKEWORD_MQTT_TIMEOUT   seconds before giving up (default 5)
# Set by wakeword for every detection: WAKEWORD_NAME, WAKEWORD_SCORE, WAKEWORD_TIME (ISO 8601).
# The system unit has no network by default: install the drop-in (install.sh --allow-network).
set -euo pipefail

json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

name=${WAKEWORD_NAME:-unknown}
score=${WAKEWORD_SCORE:-0}
if ! [[ $score =~ ^[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then
  score=$(json_string "$score")
fi
payload=$(printf '{"wake_word": %s, "score": %s, "time": %s}' \
  "$(json_string "$name")" "$score" "$(json_string "${WAKEWORD_TIME:-}")")

args=(
  -h "${WAKEWORD_MQTT_HOST:-localhost}"
  -p "${WAKEWORD_MQTT_PORT:-1883}"
  -t "${WAKEWORD_MQTT_TOPIC:-wakeword/${name}/detected}"
  -q "${WAKEWORD_MQTT_QOS:-1}"
  -i "wakeword-hook-$$"
  -m "$payload"
)
if [ -n "${WAKEWORD_MQTT_USERNAME:-}" ]; then
  args+=(-u "$WAKEWORD_MQTT_USERNAME")
fi
if [ -n "${WAKEWORD_MQTT_PASSWORD:-}" ]; then
  args+=(-P "$WAKEWORD_MQTT_PASSWORD")
fi

exec timeout "${WAKEWORD_MQTT_TIMEOUT:-5}" mosquitto_pub "${args[@]}"
