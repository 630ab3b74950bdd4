#!/usr/bin/env bash
# Install wakeword as a systemd service. Idempotent: run it again to upgrade; it never
# overwrites /etc/wakeword/config.yaml or /etc/wakeword/hooks.env once they exist.
#
#   sudo deploy/install.sh                   # system service (headless box, Raspberry Pi)
#   sudo deploy/install.sh --allow-network   # + drop-in that lets hooks/MQTT reach the LAN
#   sudo deploy/install.sh --wyoming         # + wakeword-wyoming.service for Home Assistant
#   sudo deploy/install.sh --wyoming-only    # only wakeword-wyoming.service (a box without a microphone)
#   sudo deploy/install.sh --user            # desktop: user unit for your PipeWire/PulseAudio session
#   deploy/install.sh --dry-run              # print what would be done, change nothing
#
# What it does (system mode):
#   1. Debian packages: deploy/install-system-packages.sh deploy (runtime + systemd-python build
#      deps + the hooks' curl/mosquitto_pub/aplay)
#   2. /opt/wakeword/venv with this project and its systemd + integrations extras
#   3. the shipped model -> /opt/wakeword/venv/share/wakeword/models (the unit's WAKEWORD_MODEL_DIR)
#   4. hooks -> /opt/wakeword/hooks, a chime -> /opt/wakeword/share/chime.wav
#   5. system user "wakeword" (no login, no home) in group "audio" (not with --wyoming-only)
#   6. /etc/wakeword/config.yaml from deploy/config.example.yaml and an empty hooks.env
#   7. /etc/systemd/system/wakeword.service, enabled and (re)started when systemd is PID 1;
#      with --wyoming also /etc/systemd/system/wakeword-wyoming.service (a re-run without
#      --wyoming updates an installed one and restarts it if it runs); --wyoming-only installs
#      that one instead of wakeword.service (a re-run updates an installed wakeword.service
#      and restarts it if it runs, but never installs or enables it)
set -euo pipefail

PREFIX=/opt/wakeword
VENV=$PREFIX/venv
MODEL_DIR=$VENV/share/wakeword/models
CONF_DIR=/etc/wakeword
SYSTEM_UNIT=/etc/systemd/system/wakeword.service
DROPIN_DIR=/etc/systemd/system/wakeword.service.d
USER_UNIT=/etc/systemd/user/wakeword.service
WYOMING_UNIT=/etc/systemd/system/wakeword-wyoming.service
SERVICE_USER=wakeword

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)

mode=system
allow_network=no
wyoming=no
listen=yes
dry_run=no
enable=yes

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  echo "Options: --user  --allow-network  --wyoming  --wyoming-only  --no-enable  --dry-run  -h|--help"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --user) mode=user ;;
    --system) mode=system ;;
    --allow-network) allow_network=yes ;;
    --wyoming) wyoming=yes ;;
    --wyoming-only) wyoming=yes; listen=no ;;
    --no-enable) enable=no ;;
    --dry-run|-n) dry_run=yes ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

say() { echo "wakeword-install: $*" >&2; }

if [ "$mode" = user ] && [ "$wyoming" = yes ]; then
  echo "install.sh: --wyoming and --wyoming-only install a system unit; they do not go with --user" >&2
  exit 2
fi
if [ "$listen" = no ] && [ "$allow_network" = yes ]; then
  echo "install.sh: --allow-network opens wakeword.service, which --wyoming-only does not install" >&2
  exit 2
fi

# Run a command, or only show it with --dry-run.
run() {
  if [ "$dry_run" = yes ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

systemd_running() { [ -d /run/systemd/system ]; }

if [ "$dry_run" = no ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo $0 $*), or with --dry-run to see the plan" >&2
  exit 1
fi

if [ ! -f "$src/pyproject.toml" ]; then
  echo "install.sh: $src is not a wakeword checkout (no pyproject.toml)" >&2
  exit 1
fi
model_src=$src/models/espresso.onnx
if [ ! -f "$model_src" ]; then
  if [ "$dry_run" = yes ]; then
    say "warning: $model_src is missing (train it with 'make model'); a real install stops here"
  else
    echo "install.sh: $model_src is missing: train it first with 'make model'" >&2
    exit 1
  fi
fi

# 1. Debian packages.
run "$here/install-system-packages.sh" deploy

# 2. The virtual environment. Deps first, then this project forcibly, so a re-run with changed
#    sources (same version number) still installs the new code.
if [ ! -x "$VENV/bin/python" ]; then
  run install -d -m 0755 "$PREFIX"
  run python3 -m venv "$VENV"
  run "$VENV/bin/python" -m pip install --quiet --upgrade pip
else
  say "keeping existing virtual environment $VENV"
fi
run "$VENV/bin/python" -m pip install --quiet "${src}[systemd,integrations]"
run "$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall "$src"

# 3. Models (every shipped .onnx and its card).
run install -d -m 0755 "$MODEL_DIR"
for f in "$src"/models/*.onnx "$src"/models/*.md; do
  [ -e "$f" ] || continue
  run install -m 0644 "$f" "$MODEL_DIR/"
done

# 4. Hooks, README and a chime for play-chime.sh.
run install -d -m 0755 "$PREFIX/hooks" "$PREFIX/share"
for f in "$here"/hooks/*.sh; do
  run install -m 0755 "$f" "$PREFIX/hooks/"
done
if [ -f "$src/README.md" ]; then
  run install -m 0644 "$src/README.md" "$PREFIX/README.md"
fi
if [ ! -f "$PREFIX/share/chime.wav" ]; then
  run "$VENV/bin/python" -c '
import sys
import numpy as np
import soundfile as sf
rate = 16000
t = np.arange(int(0.12 * rate)) / rate
fade = np.minimum(1.0, np.linspace(8.0, 0.0, t.size))
tones = [0.3 * np.sin(2 * np.pi * f * t) * fade for f in (880.0, 1320.0)]
sf.write(sys.argv[1], np.concatenate(tones).astype(np.float32), rate, subtype="PCM_16")
' "$PREFIX/share/chime.wav"
fi

# 5. The service account (system mode only): no login, no home, member of "audio" for the
#    microphone. --wyoming-only leaves "audio" out: the Wyoming server opens no sound device (a
#    later install with the listen unit adds the group).
if [ "$mode" = system ]; then
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    groups=()
    if [ "$listen" = yes ]; then
      groups=(--groups audio)
    fi
    run useradd --system --user-group "${groups[@]}" --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin --comment "wakeword daemon" "$SERVICE_USER"
  elif [ "$listen" = no ]; then
    say "user $SERVICE_USER exists"
  elif ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx audio; then
    run usermod --append --groups audio "$SERVICE_USER"
  else
    say "user $SERVICE_USER exists and is in group audio"
  fi
fi

# 6. Configuration: created once, never overwritten. config.yaml holds no secrets (0644);
#    hooks.env may (HA webhook URL, MQTT password): root-owned, readable by the service group.
run install -d -m 0755 "$CONF_DIR"
if [ -e "$CONF_DIR/config.yaml" ]; then
  say "keeping existing $CONF_DIR/config.yaml (compare with $here/config.example.yaml)"
else
  run install -m 0644 "$here/config.example.yaml" "$CONF_DIR/config.yaml"
fi
if [ "$mode" = system ]; then
  if [ -e "$CONF_DIR/hooks.env" ]; then
    say "keeping existing $CONF_DIR/hooks.env"
    # After uninstall.sh (which keeps /etc/wakeword) the group may have been re-created.
    if [ "$(stat -c %G "$CONF_DIR/hooks.env")" != "$SERVICE_USER" ]; then
      run chgrp "$SERVICE_USER" "$CONF_DIR/hooks.env"
    fi
  else
    run install -m 0640 -o root -g "$SERVICE_USER" "$here/hooks.env.example" "$CONF_DIR/hooks.env"
  fi
fi

# 7. The unit(s). The Wyoming one is opt-in; once installed, a re-run keeps it up to date.
#    --wyoming-only skips the listen unit, but keeps an installed one up to date the same way.
if [ "$mode" = system ]; then
  listen_update=no
  if [ "$listen" = yes ]; then
    run install -m 0644 "$here/wakeword.service" "$SYSTEM_UNIT"
  elif [ -e "$SYSTEM_UNIT" ]; then
    say "updating $SYSTEM_UNIT from an earlier install (--wyoming-only neither enables nor starts it)"
    run install -m 0644 "$here/wakeword.service" "$SYSTEM_UNIT"
    listen_update=yes
  fi
  wyoming_update=no
  if [ "$wyoming" = no ] && [ -e "$WYOMING_UNIT" ]; then
    say "updating $WYOMING_UNIT from an earlier --wyoming (uninstall.sh removes it)"
    wyoming_update=yes
  fi
  if [ "$wyoming" = yes ] || [ "$wyoming_update" = yes ]; then
    run install -m 0644 "$here/wakeword-wyoming.service" "$WYOMING_UNIT"
  fi
  if [ "$allow_network" = yes ]; then
    run install -d -m 0755 "$DROPIN_DIR"
    run install -m 0644 "$here/wakeword-network.conf" "$DROPIN_DIR/network.conf"
  elif [ -e "$DROPIN_DIR/network.conf" ]; then
    say "keeping $DROPIN_DIR/network.conf from an earlier --allow-network (delete it to cut the network)"
  fi
  if systemd_running; then
    run systemctl daemon-reload
    if [ "$enable" = yes ]; then
      if [ "$listen" = yes ]; then
        run systemctl enable wakeword.service
        run systemctl restart wakeword.service
        say "started: systemctl status wakeword; journalctl -u wakeword -f"
      elif [ "$listen_update" = yes ]; then
        run systemctl try-restart wakeword.service
      fi
      if [ "$wyoming" = yes ]; then
        run systemctl enable wakeword-wyoming.service
        run systemctl restart wakeword-wyoming.service
        say "started: systemctl status wakeword-wyoming; journalctl -u wakeword-wyoming -f"
      elif [ "$wyoming_update" = yes ]; then
        # Restarted only if running: an admin who disabled it keeps it stopped.
        run systemctl try-restart wakeword-wyoming.service
      fi
    fi
  else
    units=wakeword
    if [ "$listen" = no ]; then
      units=wakeword-wyoming
    elif [ "$wyoming" = yes ]; then
      units="wakeword wakeword-wyoming"
    fi
    say "systemd is not PID 1 here (a container or chroot?): unit installed, not enabled or started."
    say "on the target system run: systemctl daemon-reload && systemctl enable --now $units"
  fi
else
  run install -d -m 0755 "$(dirname "$USER_UNIT")"
  run install -m 0644 "$here/wakeword-user.service" "$USER_UNIT"
  say "user unit installed for every user. As yourself (not root) run:"
  say "  systemctl --user daemon-reload && systemctl --user enable --now wakeword"
  say "  journalctl --user -u wakeword -f"
  say "Your config: ~/.config/wakeword/config.yaml (else $CONF_DIR/config.yaml);"
  say "hook settings: ~/.config/wakeword/hooks.env (see $here/hooks.env.example)."
fi

if [ "$dry_run" = yes ]; then
  say "dry run: nothing was changed"
else
  say "done"
fi
