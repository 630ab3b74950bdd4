#!/usr/bin/env bash
# wakeword hook: POST the detection to a Home Assistant webhook trigger.
#
# Settings (environment; put them in /etc/wakeword/hooks.env, which the unit reads):
#   WAKEWORD_HA_URL        required, e.g. http://homeassistant.local:8123/api/webhook/espresso-XXXX
#   WAKEWORD_HA_TIMEOUT    seconds for the whole request (default 5)
# Set by wakeword for every detection: WAKEWORD_NAME, WAKEWORD_SCORE, WAKEWORD_TIME (ISO 8601).
# In Home Assistant: an automation with a "Webhook" trigger; the body is available as
# trigger.json.wake_word / trigger.json.score / trigger.json.time.
# The system unit has no network by default: install the drop-in (install.sh --allow-network).
set -euo pipefail

url=${WAKEWORD_HA_URL:-${1:-}}
if [ -z "$url" ]; then
  echo "home-assistant-webhook.sh: set WAKEWORD_HA_URL (e.g. in /etc/wakeword/hooks.env)" >&2
  exit 2
fi

json_string() {
  # Quote a value as a JSON string (escapes backslash, quote and control characters).
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

score=${WAKEWORD_SCORE:-0}
if ! [[ $score =~ ^[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then
  score=$(json_string "$score")
fi
body=$(printf '{"wake_word": %s, "score": %s, "time": %s}' \
  "$(json_string "${WAKEWORD_NAME:-}")" "$score" "$(json_string "${WAKEWORD_TIME:-}")")

exec curl --silent --show-error --fail --max-time "${WAKEWORD_HA_TIMEOUT:-5}" \
  --request POST --header "Content-Type: application/json" --data-binary "$body" "$url" \
  --output /dev/null
