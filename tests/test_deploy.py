"""deploy/: systemd units, install scripts and hooks, checked with the real tools.

- `systemd-analyze verify` on both units must print nothing: it exits 0 on unknown keys and bad
  values (it only warns), so any output fails the test. Without SYSTEMD_LOG_TARGET=console it
  sends those warnings to the (absent) journal when stderr is not a terminal, and would pass
  anything: the tests set it, and a control case proves a bogus key is caught.
  The units' ExecStart (/opt/wakeword/venv/bin/wakeword) does not exist on a test machine, and
  verify rightly complains about that; so the tests verify a copy whose ExecStart points at this
  venv's real `wakeword` entry point, and change nothing else.
- `systemd-analyze security --offline=true` scores the system unit (a static lint of the file,
  deterministic, so the score is asserted).
- bash -n and shellcheck on every script; install.sh/uninstall.sh --dry-run (no root changes).
- The hooks run for real: the webhook against an HTTP server on 127.0.0.1, the MQTT hook against
  a real mosquitto on a free loopback port, the chime through a private PulseAudio server.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.virtual_mic import make_virtual_mic_fixture

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "deploy"
SYSTEM_UNIT = DEPLOY / "wakeword.service"
USER_UNIT = DEPLOY / "wakeword-user.service"
NETWORK_DROPIN = DEPLOY / "wakeword-network.conf"
HOOKS = DEPLOY / "hooks"
SCRIPTS = sorted(DEPLOY.glob("*.sh")) + sorted(HOOKS.glob("*.sh"))
INSTALLED_BINARY = "/opt/wakeword/venv/bin/wakeword"
MAX_EXPOSURE = 3.0

virtual_mic = make_virtual_mic_fixture()

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (apt install systemd)"
)


def venv_wakeword() -> str:
    """This environment's real `wakeword` console script (what ExecStart runs once installed)."""
    candidate = Path(sys.prefix) / "bin" / "wakeword"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("wakeword")
    if found is None:
        pytest.skip("the wakeword entry point is not installed in this environment (pip install -e .)")
    return found


def analyze_env(tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ)
    env.update(SYSTEMD_LOG_TARGET="console", SYSTEMD_LOG_LEVEL="info", XDG_RUNTIME_DIR=str(runtime))
    env.pop("SYSTEMD_LOG_COLOR", None)
    return env


def verify_output(unit: Path, tmp_path: Path, *, user: bool = False, dropin: Path | None = None) -> str:
    """systemd-analyze verify on a copy of `unit` with ExecStart at the real binary; all it printed."""
    workdir = tmp_path / ("user" if user else "system")
    workdir.mkdir(exist_ok=True)
    text = unit.read_text().replace(INSTALLED_BINARY, venv_wakeword())
    copy = workdir / ("wakeword.service")
    copy.write_text(text)
    if dropin is not None:  # verify reads drop-ins from <unit>.d next to the unit file
        (workdir / "wakeword.service.d").mkdir(exist_ok=True)
        (workdir / "wakeword.service.d" / dropin.name).write_text(dropin.read_text())
    args = ["systemd-analyze", "verify", *(["--user"] if user else []), str(copy)]
    result = subprocess.run(args, capture_output=True, text=True, env=analyze_env(tmp_path), timeout=60)
    output = (result.stdout + result.stderr).strip()
    return output if result.returncode == 0 else f"exit {result.returncode}: {output}"


def exposure(unit_args: list[str], tmp_path: Path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", *unit_args],
        capture_output=True,
        text=True,
        env=analyze_env(tmp_path),
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, f"no score in systemd-analyze security output: {result.stdout[-500:]} {result.stderr}"
    return float(match.group(1))


# --- systemd units --------------------------------------------------------------------------


@needs_systemd_analyze
def test_system_unit_verifies_without_any_warning(tmp_path):
    assert verify_output(SYSTEM_UNIT, tmp_path) == ""


@needs_systemd_analyze
def test_system_unit_with_network_dropin_verifies_without_any_warning(tmp_path):
    assert verify_output(SYSTEM_UNIT, tmp_path, dropin=NETWORK_DROPIN) == ""


@needs_systemd_analyze
def test_user_unit_verifies_without_any_warning(tmp_path):
    assert verify_output(USER_UNIT, tmp_path, user=True) == ""


@needs_systemd_analyze
def test_verify_check_catches_a_bogus_key(tmp_path):
    """Control: the same check on a unit with a typo must fail, or the tests above prove nothing."""
    bad = tmp_path / "bad" / "wakeword.service"
    bad.parent.mkdir()
    bad.write_text(SYSTEM_UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    assert "Unknown key" in verify_output(bad, tmp_path)
    bad_dropin = tmp_path / "bad" / "network.conf"
    bad_dropin.write_text(NETWORK_DROPIN.read_text().replace("PrivateNetwork=no", "PrivateNetwork=maybe"))
    assert "network.conf:" in verify_output(SYSTEM_UNIT, tmp_path, dropin=bad_dropin)  # drop-ins are read


@needs_systemd_analyze
def test_system_unit_exposure_is_at_most_3(tmp_path):
    score = exposure([str(SYSTEM_UNIT)], tmp_path)
    print(f"systemd-analyze security exposure, {SYSTEM_UNIT.name}: {score}")
    assert score <= MAX_EXPOSURE


@needs_systemd_analyze
def test_system_unit_with_network_dropin_stays_within_budget(tmp_path):
    root = tmp_path / "root"
    unit_dir = root / "etc" / "systemd" / "system"
    (unit_dir / "wakeword.service.d").mkdir(parents=True)
    shutil.copy(SYSTEM_UNIT, unit_dir / "wakeword.service")
    shutil.copy(NETWORK_DROPIN, unit_dir / "wakeword.service.d" / "network.conf")
    with_network = exposure([f"--root={root}", "wakeword.service"], tmp_path)
    without = exposure([str(SYSTEM_UNIT)], tmp_path)
    print(f"exposure with the network drop-in: {with_network} (without: {without})")
    assert without < with_network <= MAX_EXPOSURE  # the drop-in really opens the network


@needs_systemd_analyze
def test_user_unit_exposure_is_reported(tmp_path):
    score = exposure(["--user", str(USER_UNIT)], tmp_path)
    print(f"systemd-analyze security exposure, {USER_UNIT.name} (user manager): {score}")
    assert 0.0 < score <= 10.0


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=lambda p: p.name)
def test_units_speak_the_notify_protocol(unit):
    s = unit_settings(unit)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] and s["Restart"] == ["on-failure"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["ExecStart"][0].startswith(INSTALLED_BINARY + " listen")


def test_units_and_install_script_agree_on_paths():
    """ExecStart, WAKEWORD_MODEL_DIR and the config path are where install.sh puts things."""
    script = (DEPLOY / "install.sh").read_text()
    variables: dict[str, str] = {}
    for name, value in re.findall(r"^([A-Z_]+)=(\S+)$", script, flags=re.M):
        variables[name] = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], value)
    system = unit_settings(SYSTEM_UNIT)
    assert system["ExecStart"] == [
        f"{variables['VENV']}/bin/wakeword listen --config {variables['CONF_DIR']}/config.yaml"
    ]
    for unit in (SYSTEM_UNIT, USER_UNIT):
        assert f"WAKEWORD_MODEL_DIR={variables['MODEL_DIR']}" in unit_settings(unit)["Environment"]
    assert system["User"] == [variables["SERVICE_USER"]]
    assert "audio" in system["SupplementaryGroups"]


def test_model_dir_in_the_unit_is_what_the_engine_reads(monkeypatch):
    from wakeword.model import default_model_path

    model_dir = next(
        v.split("=", 1)[1]
        for v in unit_settings(SYSTEM_UNIT)["Environment"]
        if v.startswith("WAKEWORD_MODEL_DIR=")
    )
    monkeypatch.setenv("WAKEWORD_MODEL_DIR", model_dir)
    assert default_model_path() == Path(model_dir) / "espresso.onnx"


def syscall_set(spec: str, tmp_path: Path, _seen: dict[str, set[str]] | None = None) -> set[str]:
    """System calls named by a SystemCallFilter= value (groups like @system-service expanded)."""
    seen = {} if _seen is None else _seen
    names: set[str] = set()
    for item in spec.split():
        if not item.startswith("@"):
            names.add(item)
            continue
        if item not in seen:
            seen[item] = set()
            out = subprocess.run(
                ["systemd-analyze", "syscall-filter", item],
                capture_output=True,
                text=True,
                env=analyze_env(tmp_path),
                timeout=30,
                check=True,
            ).stdout
            members = [line.strip() for line in out.splitlines()[1:] if line.strip()]
            members = [m for m in members if not m.startswith("#")]
            seen[item] = syscall_set(" ".join(members), tmp_path, seen)
        names |= seen[item]
    return names


@needs_systemd_analyze
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace missing (apt install strace)")
def test_daemon_runs_under_the_units_system_call_filter(tmp_path, tiny_model_path):
    """No systemd here to apply the seccomp filter, so emulate it with strace: every system call the
    daemon makes must be in the unit's allow list, and the denied ones it tries (NUMA hints, realtime
    priority) are failed with EPERM, as SystemCallErrorNumber=EPERM does, without breaking it."""
    import numpy as np
    import soundfile as sf

    filters = unit_settings(SYSTEM_UNIT)["SystemCallFilter"]
    allowed = set().union(*(syscall_set(f, tmp_path) for f in filters if not f.startswith("~")))
    denied = set().union(*(syscall_set(f[1:], tmp_path) for f in filters if f.startswith("~")))
    wav = tmp_path / "room.wav"
    sf.write(str(wav), np.random.default_rng(5).normal(0, 0.001, 16000 * 3).astype(np.float32), 16000)
    trace = tmp_path / "strace.out"
    inject = ",".join(f"?{name}" for name in sorted(denied))
    daemon = [
        venv_wakeword(),
        "listen",
        "--model",
        str(tiny_model_path),
        "--input",
        str(wav),
        "--no-realtime",
    ]
    result = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", f"inject={inject}:error=EPERM", *daemon],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"},
    )
    if "ptrace" in result.stderr and result.returncode != 0:
        pytest.skip(f"strace cannot trace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    assert "end of input" in result.stderr
    used = set(re.findall(r"^\d+\s+([a-z0-9_]+)\(", trace.read_text(), flags=re.M))
    assert used, "strace recorded no system calls"
    assert used - allowed == set(), f"outside @system-service: {sorted(used - allowed)}"
    print(f"denied by the unit, failed with EPERM, survived: {sorted(used & denied)}")


# --- scripts --------------------------------------------------------------------------------


def test_every_deploy_script_is_found():
    names = {p.name for p in SCRIPTS}
    assert {"install.sh", "uninstall.sh", "install-system-packages.sh"} <= names
    assert {"play-chime.sh", "home-assistant-webhook.sh", "mqtt-publish.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_is_shellcheck_clean(script):
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck missing (apt install shellcheck)")
    lint = subprocess.run(
        ["shellcheck", "--severity=style", str(script)], capture_output=True, text=True, timeout=60
    )
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("script", ["install.sh", "uninstall.sh"])
def test_dry_run_shows_the_plan_and_changes_nothing(script, tmp_path):
    before = {
        p: p.exists()
        for p in (Path("/opt/wakeword"), Path("/etc/wakeword"), Path("/etc/systemd/system/wakeword.service"))
    }
    result = subprocess.run(
        [str(DEPLOY / script), "--dry-run"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing was changed" in result.stderr
    after = {p: p.exists() for p in before}
    assert after == before
    if script == "install.sh":
        planned = result.stdout
        assert "install-system-packages.sh deploy" in planned
        assert "/etc/systemd/system/wakeword.service" in planned
        if not Path("/etc/wakeword/config.yaml").exists():
            assert "/etc/wakeword/config.yaml" in planned


def test_install_modes_plan_the_right_units(tmp_path):
    def plan(*flags: str) -> str:
        result = subprocess.run(
            [str(DEPLOY / "install.sh"), "--dry-run", *flags], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    network = plan("--allow-network")
    assert "wakeword-network.conf /etc/systemd/system/wakeword.service.d/network.conf" in network
    user = plan("--user")
    assert "wakeword-user.service /etc/systemd/user/wakeword.service" in user
    assert "/etc/systemd/system/wakeword.service" not in user
    assert "useradd" not in user and "hooks.env" not in user  # no system account, no root-only secrets


def test_install_rejects_unknown_options():
    result = subprocess.run(
        [str(DEPLOY / "install.sh"), "--bogus"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "unknown option '--bogus'" in result.stderr


# --- hooks ------------------------------------------------------------------------------------

EVENT_ENV = {
    "WAKEWORD_NAME": "espresso",
    "WAKEWORD_SCORE": "0.93",
    "WAKEWORD_TIME": "2026-11-25T12:00:00+00:00",
}


def hook_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAKEWORD_")}
    env.update(EVENT_ENV)
    env.update(extra)
    return env


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[tuple[str, str, dict[str, str], bytes]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append((self.command, self.path, dict(self.headers), body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"requests": [], "status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing")
def test_webhook_hook_posts_the_detection_as_json(http_server):
    base, handler = http_server
    env = hook_env(WAKEWORD_HA_URL=f"{base}/api/webhook/espresso-test", WAKEWORD_NAME='es"pre\\sso')
    result = subprocess.run(
        [str(HOOKS / "home-assistant-webhook.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    ((method, path, headers, body),) = handler.requests
    assert (method, path) == ("POST", "/api/webhook/espresso-test")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"wake_word": 'es"pre\\sso', "score": 0.93, "time": EVENT_ENV["WAKEWORD_TIME"]}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing")
def test_webhook_hook_fails_when_home_assistant_refuses(http_server):
    base, handler = http_server
    handler.status = 404
    env = hook_env(WAKEWORD_HA_URL=f"{base}/api/webhook/wrong")
    result = subprocess.run(
        [str(HOOKS / "home-assistant-webhook.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "404" in result.stderr


def test_webhook_hook_without_url_says_which_variable():
    result = subprocess.run(
        [str(HOOKS / "home-assistant-webhook.sh")], env=hook_env(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "WAKEWORD_HA_URL" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mosquitto(tmp_path) -> Iterator[int]:
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto / mosquitto-clients missing (deploy/install-system-packages.sh test)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"mosquitto did not listen on {port}")
        yield port
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def subscribe(port: int, topic: str) -> subprocess.Popen:
    """mosquitto_sub for one message; returns once the broker has acknowledged the subscription."""
    sub = subprocess.Popen(  # stdbuf: line-buffered, or SUBACK would sit in stdio's pipe buffer
        [
            "stdbuf",
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "20",
            "-v",
            "-d",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert sub.stdout is not None
    for line in sub.stdout:  # -d prints the protocol exchange; SUBACK = subscribed
        if "SUBACK" in line:
            return sub
    pytest.fail(f"mosquitto_sub never subscribed: {sub.stderr.read() if sub.stderr else ''}")


def received(sub: subprocess.Popen) -> str:
    """The rest of mosquitto_sub's output (read from the same buffered pipe subscribe() used)."""
    assert sub.stdout is not None
    out = sub.stdout.read()
    sub.wait(timeout=30)
    return out


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto-clients missing")
def test_mqtt_hook_publishes_the_detection(mosquitto):
    sub = subscribe(mosquitto, "home/kitchen/wake")
    env = hook_env(
        WAKEWORD_MQTT_HOST="127.0.0.1",
        WAKEWORD_MQTT_PORT=str(mosquitto),
        WAKEWORD_MQTT_TOPIC="home/kitchen/wake",
    )
    result = subprocess.run(
        [str(HOOKS / "mqtt-publish.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    out = received(sub)
    lines = [line for line in out.splitlines() if line.startswith("home/kitchen/wake ")]
    assert len(lines) == 1, out
    payload = json.loads(lines[0].split(" ", 1)[1])
    assert payload == {"wake_word": "espresso", "score": 0.93, "time": EVENT_ENV["WAKEWORD_TIME"]}


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto-clients missing")
def test_mqtt_hook_default_topic_names_the_wake_word(mosquitto):
    sub = subscribe(mosquitto, "wakeword/#")
    env = hook_env(WAKEWORD_MQTT_HOST="127.0.0.1", WAKEWORD_MQTT_PORT=str(mosquitto))
    result = subprocess.run(
        [str(HOOKS / "mqtt-publish.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    out = received(sub)
    assert "wakeword/espresso/detected {" in out


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto-clients missing")
def test_mqtt_hook_fails_when_no_broker_listens():
    env = hook_env(WAKEWORD_MQTT_HOST="127.0.0.1", WAKEWORD_MQTT_PORT=str(free_port()))
    result = subprocess.run(
        [str(HOOKS / "mqtt-publish.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0


def test_chime_hook_names_the_variable_when_the_file_is_missing(tmp_path):
    env = hook_env(WAKEWORD_CHIME_FILE=str(tmp_path / "missing.wav"))
    result = subprocess.run(
        [str(HOOKS / "play-chime.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "WAKEWORD_CHIME_FILE" in result.stderr


def test_chime_hook_rejects_an_unknown_player(tmp_path):
    wav = tmp_path / "chime.wav"
    wav.write_bytes(b"RIFF")
    env = hook_env(WAKEWORD_CHIME_FILE=str(wav), WAKEWORD_CHIME_PLAYER="mpv")
    result = subprocess.run(
        [str(HOOKS / "play-chime.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "WAKEWORD_CHIME_PLAYER" in result.stderr


@pytest.mark.parametrize("player", ["", "aplay"], ids=["auto-paplay", "aplay-via-pulse"])
def test_chime_hook_plays_into_a_real_sound_server(player, virtual_mic, tmp_path):
    """A private PulseAudio is the sound card: paplay (auto-detected) and aplay -D pulse both play."""
    import numpy as np
    import soundfile as sf

    if shutil.which("paplay") is None or shutil.which("aplay") is None:
        pytest.skip("paplay/aplay missing (pulseaudio-utils, alsa-utils)")
    wav = tmp_path / "chime.wav"
    sf.write(str(wav), (0.2 * np.sin(np.arange(3200) * 2 * np.pi * 880 / 16000)).astype(np.float32), 16000)
    env = {**virtual_mic.env, **hook_env(WAKEWORD_CHIME_FILE=str(wav))}
    env.update({k: v for k, v in virtual_mic.env.items() if k in ("XDG_RUNTIME_DIR", "PULSE_SERVER", "HOME")})
    if player:
        env.update(WAKEWORD_CHIME_PLAYER=player, WAKEWORD_CHIME_DEVICE="pulse")
    result = subprocess.run(
        [str(HOOKS / "play-chime.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


# --- example config ---------------------------------------------------------------------------

EXAMPLE_CONFIG = DEPLOY / "config.example.yaml"


def commented_blocks(text: str) -> dict[str, str]:
    """The commented-out sections (`#models:` and the `#  ...` lines under it), uncommented once."""
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        top = re.match(r"^#(\w+):", line)
        if top:
            current = top.group(1)
            blocks[current] = [line[1:]]
        elif current and line.startswith("#  "):
            blocks[current].append(line[1:])
        else:
            current = None
    return {key: "\n".join(lines) for key, lines in blocks.items()}


def test_example_config_loads_as_shipped():
    from wakeword.config import load_config

    config = load_config(EXAMPLE_CONFIG)
    assert config.hooks == () and config.mqtt is None  # nothing that needs setup is on by default
    assert config.models[0].path.name == "espresso.onnx"  # the shipped model


def test_example_config_commented_sections_are_valid_when_uncommented(monkeypatch):
    import yaml

    from wakeword.config import config_from_mapping

    monkeypatch.setenv("WAKEWORD_MQTT_PASSWORD", "from-hooks-env")
    text = EXAMPLE_CONFIG.read_text()
    data = yaml.safe_load(text)
    blocks = commented_blocks(text)
    assert {"models", "hooks", "mqtt"} <= set(blocks)
    for block in blocks.values():
        data.update(yaml.safe_load(block))
    config = config_from_mapping(data, str(EXAMPLE_CONFIG), DEPLOY)
    assert config.mqtt is not None and config.mqtt.tls and config.mqtt.password == "from-hooks-env"
    assert len(config.hooks) == 4 and config.models[0].threshold == 0.5


def test_example_config_documents_every_key():
    from wakeword import config as cfg

    mentioned = set(re.findall(r"^[#\s-]*(\w+):", EXAMPLE_CONFIG.read_text(), flags=re.M))
    for keys in (
        cfg._TOP_KEYS,
        cfg._MODEL_KEYS,
        cfg._AUDIO_KEYS,
        cfg._HOOK_KEYS,
        cfg._MQTT_KEYS,
        cfg._TLS_KEYS,
        cfg._SERVICE_KEYS,
    ):
        assert set(keys) <= mentioned, f"not in config.example.yaml: {sorted(set(keys) - mentioned)}"
