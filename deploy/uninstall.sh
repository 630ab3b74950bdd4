#!/usr/bin/env bash
# Undo deploy/install.sh. Keeps /etc/wakeword (your config and hook secrets) unless --purge.
#
#   sudo deploy/uninstall.sh            # stop + disable the units (wakeword, wakeword-wyoming),
#                                       # remove /opt/wakeword, the units, the network drop-in
#                                       # and the "wakeword" system user
#   sudo deploy/uninstall.sh --purge    # ... and /etc/wakeword
#   deploy/uninstall.sh --dry-run       # print what would be done, change nothing
#
# Users who enabled the user unit should first run: systemctl --user disable --now wakeword
set -euo pipefail

PREFIX=/opt/wakeword
CONF_DIR=/etc/wakeword
SYSTEM_UNIT=/etc/systemd/system/wakeword.service
DROPIN_DIR=/etc/systemd/system/wakeword.service.d
USER_UNIT=/etc/systemd/user/wakeword.service
WYOMING_UNIT=/etc/systemd/system/wakeword-wyoming.service
WYOMING_DROPIN_DIR=/etc/systemd/system/wakeword-wyoming.service.d
SERVICE_USER=wakeword

purge=no
dry_run=no

while [ $# -gt 0 ]; do
  case "$1" in
    --purge) purge=yes ;;
    --dry-run|-n) dry_run=yes ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "wakeword-uninstall: $*" >&2; }

run() {
  if [ "$dry_run" = yes ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

if [ "$dry_run" = no ] && [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run as root (sudo $0 $*), or with --dry-run to see the plan" >&2
  exit 1
fi

if [ -d /run/systemd/system ]; then
  if [ -e "$SYSTEM_UNIT" ]; then
    # Either may fail if the unit is already stopped or disabled: that is the state we want.
    run systemctl disable --now wakeword.service || true
  fi
  if [ -e "$WYOMING_UNIT" ]; then
    run systemctl disable --now wakeword-wyoming.service || true
  fi
else
  say "systemd is not PID 1 here: removing files only"
fi

for f in "$SYSTEM_UNIT" "$DROPIN_DIR/network.conf" "$USER_UNIT" "$WYOMING_UNIT"; do
  if [ -e "$f" ]; then
    run rm -f "$f"
  fi
done
# The drop-in directories may hold the admin's own files (systemctl edit, e.g. the Wyoming
# unit's LAN override): remove them only if empty.
for d in "$DROPIN_DIR" "$WYOMING_DROPIN_DIR"; do
  if [ -d "$d" ]; then
    run rmdir --ignore-fail-on-non-empty "$d"
  fi
done
if [ -d /run/systemd/system ]; then
  run systemctl daemon-reload
  run systemctl reset-failed wakeword.service 2>/dev/null || true
  run systemctl reset-failed wakeword-wyoming.service 2>/dev/null || true
fi

if [ -d "$PREFIX" ]; then
  run rm -rf "$PREFIX"
fi

if getent passwd "$SERVICE_USER" >/dev/null; then
  run userdel "$SERVICE_USER"
fi
if getent group "$SERVICE_USER" >/dev/null; then
  run groupdel "$SERVICE_USER"
fi

if [ -d "$CONF_DIR" ]; then
  if [ "$purge" = yes ]; then
    run rm -rf "$CONF_DIR"
  else
    say "kept $CONF_DIR (your config); remove it with --purge"
  fi
fi

if [ "$dry_run" = yes ]; then
  say "dry run: nothing was changed"
else
  say "done"
fi
