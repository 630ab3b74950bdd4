"""deploy/: systemd units, install scripts and hooks, checked with the real tools.

- `systemd-analyze verify` on both units must print nothing: it exits 0 on unknown keys and bad
  values (it only warns), so any output fails the test. Without SYSTEMD_LOG_TARGET=console it
  sends those warnings to the (absent) journal when stderr is not a terminal, and would pass
  anything: the tests set it, and a control case proves a bogus key is caught.
  The units' ExecStart (/opt/wakeword/venv/bin/wakeword) does not exist on a test machine, and
  verify rightly complains about that; so the tests verify a copy whose ExecStart points at this
  venv's real `wakeword` entry point, and change nothing else.
- `systemd-analyze security --offline=true` scores the system units (a static lint of the file,
  deterministic, so the score is asserted).
- wakeword-wyoming.service (the Wyoming server for Home Assistant) gets the same checks, plus: its
  sandbox is wakeword.service's except for listed differences, and the daemon really serves under
  its system call filter (strace, as for `listen`) and its W^X rule (PR_SET_MDWE).
- bash -n and shellcheck on every script; install.sh/uninstall.sh --dry-run (no root changes).
- The hooks run for real: the webhook against an HTTP server on 127.0.0.1, the MQTT hook against
  a real mosquitto on a free loopback port, the chime through a private PulseAudio server.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import signal
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
WYOMING_UNIT = DEPLOY / "wakeword-wyoming.service"
NETWORK_DROPIN = DEPLOY / "wakeword-network.conf"
HOOKS = DEPLOY / "hooks"
SCRIPTS = sorted(DEPLOY.glob("*.sh")) + sorted(HOOKS.glob("*.sh"))
INSTALLED_BINARY = "/opt/wakeword/venv/bin/wakeword"
MAX_EXPOSURE = 3.0
# Measured 1.0 (systemd 252): a bit more than wakeword.service's 0.7, for the TCP socket it must
# have (AF_INET/AF_INET6, no PrivateNetwork=), less PrivateUsers= and PrivateDevices=.
MAX_WYOMING_EXPOSURE = 1.1

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


def verify_output(
    unit: Path,
    tmp_path: Path,
    *,
    user: bool = False,
    dropin: Path | None = None,
    name: str = "wakeword.service",
) -> str:
    """systemd-analyze verify on a copy of `unit` (as `name`) with ExecStart at the real binary; all
    it printed."""
    workdir = tmp_path / ("user" if user else "system")
    workdir.mkdir(exist_ok=True)
    text = unit.read_text().replace(INSTALLED_BINARY, venv_wakeword())
    copy = workdir / name
    copy.write_text(text)
    if dropin is not None:  # verify reads drop-ins from <unit>.d next to the unit file
        (workdir / f"{name}.d").mkdir(exist_ok=True)
        (workdir / f"{name}.d" / dropin.name).write_text(
            dropin.read_text().replace(INSTALLED_BINARY, venv_wakeword())
        )
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


#: `systemd-analyze security` of wakeword.service before it got a place for saved clips (issue 18):
#: StateDirectory= must not cost exposure points.
EXPOSURE_BEFORE_STATE_DIRECTORY = 0.7


@needs_systemd_analyze
def test_system_unit_gives_clips_a_private_state_directory_at_no_exposure_cost(tmp_path):
    settings = unit_settings(SYSTEM_UNIT)
    assert settings["StateDirectory"] == ["wakeword"] and settings["StateDirectoryMode"] == ["0700"]
    assert settings["ProtectSystem"] == ["strict"] and "ReadWritePaths" not in settings
    assert exposure([str(SYSTEM_UNIT)], tmp_path) <= EXPOSURE_BEFORE_STATE_DIRECTORY
    example = EXAMPLE_CONFIG.read_text()
    assert "/var/lib/wakeword/clips" in example and "/var/lib/wakeword/clips" in SYSTEM_UNIT.read_text()


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


# --- wakeword-wyoming.service ----------------------------------------------------------------

WYOMING_NAME = "wakeword-wyoming.service"
# Where the Wyoming unit's sandbox may differ from wakeword.service's, and why (the header of
# deploy/wakeword-wyoming.service explains each). Every other setting must be identical.
WYOMING_DIFFERENCES = {
    "Description",
    "After",  # network.target instead of sound.target
    "Wants",
    "ExecStart",  # `wyoming`, not `listen`
    "ExecReload",  # no SIGHUP reload
    "WatchdogSec",  # no watchdog: no continuous work to prove
    "TimeoutStartSec",
    "SupplementaryGroups",  # no "audio": it opens no sound device
    "DeviceAllow",
    "PrivateNetwork",  # a TCP server: reachable from the host's network namespace...
    "RestrictAddressFamilies",  # ...with AF_INET/AF_INET6...
    "IPAddressAllow",  # ...but only from and to localhost
    "PrivateDevices",
    "PrivateUsers",
    "MemoryDenyWriteExecute",
    # /run/wakeword for `--uri unix:///run/wakeword/wyoming.sock`: `listen` binds no socket. It
    # loosens nothing the other unit restricts: only that directory becomes writable.
    "RuntimeDirectory",
    "RuntimeDirectoryMode",
    # /var/lib/wakeword for `listen`'s saved clips (audio.save_clips): `wyoming` saves nothing.
    "StateDirectory",
    "StateDirectoryMode",
}


def header_dropin(unit: Path) -> str:
    """The drop-in shown in `unit`'s header comment (the `#   ` lines after `systemctl edit`)."""
    lines = unit.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "systemctl edit" in line) + 1
    dropin = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        dropin.append(line[4:])
    return "\n".join(dropin) + "\n"


@needs_systemd_analyze
def test_wyoming_unit_verifies_without_any_warning(tmp_path):
    assert verify_output(WYOMING_UNIT, tmp_path, name=WYOMING_NAME) == ""
    bad = tmp_path / "bad" / WYOMING_NAME  # control, for this unit's name too
    bad.parent.mkdir()
    bad.write_text(WYOMING_UNIT.read_text().replace("IPAddressAllow=", "IPAddressAlow="))
    assert "Unknown key" in verify_output(bad, tmp_path / "bad", name=WYOMING_NAME)


@needs_systemd_analyze
def test_wyoming_unit_lan_dropin_in_its_header_verifies_and_opens_only_the_uri(tmp_path):
    """The header tells admins how to serve Home Assistant on another host: that must be valid."""
    text = header_dropin(WYOMING_UNIT)
    dropin = tmp_path / "lan.conf"
    dropin.write_text(text)
    assert verify_output(WYOMING_UNIT, tmp_path, dropin=dropin, name=WYOMING_NAME) == ""
    settings = unit_settings(dropin)
    assert settings["ExecStart"][0] == ""  # clears the unit's command before setting its own
    (unit_command,) = unit_settings(WYOMING_UNIT)["ExecStart"]
    assert settings["ExecStart"][1] == unit_command.replace("tcp://127.0.0.1:", "tcp://0.0.0.0:")
    assert settings["IPAddressAllow"] and "localhost" not in settings["IPAddressAllow"]

    root = tmp_path / "root"
    unit_dir = root / "etc" / "systemd" / "system"
    (unit_dir / f"{WYOMING_NAME}.d").mkdir(parents=True)
    shutil.copy(WYOMING_UNIT, unit_dir / WYOMING_NAME)
    shutil.copy(dropin, unit_dir / f"{WYOMING_NAME}.d" / "override.conf")
    with_lan = exposure([f"--root={root}", WYOMING_NAME], tmp_path)
    print(f"{WYOMING_NAME} exposure with the LAN drop-in from its header: {with_lan}")
    assert with_lan <= MAX_EXPOSURE


@needs_systemd_analyze
def test_wyoming_unit_exposure_is_within_budget(tmp_path):
    score = exposure([str(WYOMING_UNIT)], tmp_path)
    print(f"systemd-analyze security exposure, {WYOMING_UNIT.name}: {score} (budget {MAX_WYOMING_EXPOSURE})")
    assert score <= MAX_WYOMING_EXPOSURE


def test_wyoming_unit_speaks_the_notify_protocol():
    s = unit_settings(WYOMING_UNIT)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["ExecStart"][0].startswith(INSTALLED_BINARY + " wyoming ")
    assert "WatchdogSec" not in s  # the server sends no WATCHDOG=1: a watchdog would kill it
    assert "ExecReload" not in s  # it does not handle SIGHUP (the default action would kill it)
    assert s["Restart"] == ["on-failure"] and s["RestartPreventExitStatus"] == ["2 3"]


def test_wyoming_unit_is_loopback_only_and_reads_no_device():
    from wakeword.wyoming import DEFAULT_URI

    s = unit_settings(WYOMING_UNIT)
    uri = s["ExecStart"][0].split("--uri ", 1)[1].split()[0]
    assert uri == DEFAULT_URI == "tcp://127.0.0.1:10400"
    assert s["IPAddressDeny"] == ["any"] and s["IPAddressAllow"] == ["localhost"]
    assert s.get("PrivateNetwork", ["no"]) == ["no"]
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert s["PrivateDevices"] == ["yes"] and s["DevicePolicy"] == ["closed"]
    assert "DeviceAllow" not in s and "SupplementaryGroups" not in s


def test_wyoming_unit_has_the_system_units_sandbox():
    """Same hardening as wakeword.service, except the listed differences: a change to one unit's
    sandbox that is not made to the other fails here."""
    system, wyoming = unit_settings(SYSTEM_UNIT), unit_settings(WYOMING_UNIT)
    same = {key: value for key, value in system.items() if key not in WYOMING_DIFFERENCES}
    assert {key: wyoming.get(key) for key in same} == same
    extra = set(wyoming) - set(system)
    assert extra <= WYOMING_DIFFERENCES, f"not in wakeword.service: {sorted(extra - WYOMING_DIFFERENCES)}"


def readme_unix_socket_dropin() -> str:
    """The `systemctl edit wakeword-wyoming` drop-in in README.md that serves a Unix socket."""
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"^```ini\n(.*?)^```$", readme, flags=re.M | re.S)
    (block,) = [b for b in blocks if "--uri unix://" in b]
    return block


@needs_systemd_analyze
def test_wyoming_unit_serves_the_readme_unix_socket_in_its_runtime_directory(tmp_path):
    """README's drop-in for unix:///run/wakeword/wyoming.sock is valid, and the unit creates the
    socket's directory (/run is read-only under ProtectSystem=strict, and /run/wakeword would not
    exist otherwise)."""
    from wakeword.cli import build_parser

    dropin = tmp_path / "unix.conf"
    dropin.write_text(readme_unix_socket_dropin())
    assert verify_output(WYOMING_UNIT, tmp_path, dropin=dropin, name=WYOMING_NAME) == ""
    settings = unit_settings(dropin)
    assert settings["ExecStart"][0] == ""  # clears the unit's command before setting its own
    (unit_command,) = unit_settings(WYOMING_UNIT)["ExecStart"]
    uri = "unix:///run/wakeword/wyoming.sock"
    assert settings["ExecStart"][1] == unit_command.replace("tcp://127.0.0.1:10400", uri)
    args = build_parser().parse_args(settings["ExecStart"][1].split()[1:])
    assert args.uri == uri

    s = unit_settings(WYOMING_UNIT)
    socket_dir = Path(uri.removeprefix("unix://")).parent
    assert s["RuntimeDirectory"] == [socket_dir.name] and socket_dir.parent == Path("/run")
    # Traversable by everyone: who may connect is the socket file's own mode (UMask=0077: owner only).
    assert s["RuntimeDirectoryMode"] == ["0755"] and s["UMask"] == ["0077"]


def install_variables(script: str) -> dict[str, str]:
    """The NAME=value assignments at the top of an install script, $NAME references expanded."""
    variables: dict[str, str] = {}
    text = (DEPLOY / script).read_text()
    for name, value in re.findall(r"^([A-Z_]+)=(\S+)$", text, flags=re.M):
        variables[name] = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], value)
    return variables


def test_wyoming_unit_and_install_scripts_agree_on_paths():
    from wakeword.cli import build_parser
    from wakeword.wyoming import run_wyoming

    install, uninstall = install_variables("install.sh"), install_variables("uninstall.sh")
    s = unit_settings(WYOMING_UNIT)
    assert install["WYOMING_UNIT"] == uninstall["WYOMING_UNIT"] == f"/etc/systemd/system/{WYOMING_NAME}"
    assert uninstall["WYOMING_DROPIN_DIR"] == install["WYOMING_UNIT"] + ".d"
    config = f"{install['CONF_DIR']}/config.yaml"
    assert s["ExecStart"] == [
        f"{install['VENV']}/bin/wakeword wyoming --config {config} --uri tcp://127.0.0.1:10400"
    ]
    assert f"WAKEWORD_MODEL_DIR={install['MODEL_DIR']}" in s["Environment"]
    assert s["User"] == s["Group"] == [install["SERVICE_USER"]]
    assert s["EnvironmentFile"] == unit_settings(SYSTEM_UNIT)["EnvironmentFile"]
    # The command line is one the real parser accepts, and runs the Wyoming server.
    args = build_parser().parse_args(s["ExecStart"][0].split()[1:])
    assert args.func is run_wyoming
    assert (str(args.config), args.uri) == (config, "tcp://127.0.0.1:10400")


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


def wyoming_round_trip(prefix: list[str], model: Path, tmp_path: Path, pid_file: Path | None = None):
    """`wakeword wyoming` behind `prefix` on a free port: stream a loud burst to it with the wyoming
    package's client, then SIGTERM it. Returns (reply event types, exit code, its stderr)."""
    pytest.importorskip("wyoming", reason="the integrations extra (wyoming) is not installed")
    import asyncio

    import numpy as np
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info

    port = free_port()
    command = [venv_wakeword(), "wyoming", "--uri", f"tcp://127.0.0.1:{port}", "--model", str(model)]
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("NOTIFY_SOCKET", None)
    errors = tmp_path / "stderr.txt"
    rng = np.random.default_rng(3)
    burst = np.concatenate([rng.normal(0, 5e-4, 16000), rng.normal(0, 0.3, 9600), rng.normal(0, 5e-4, 16000)])
    pcm = np.clip(np.round(burst * 32767), -32768, 32767).astype("<i2").tobytes()

    async def stream() -> list[str]:
        deadline = time.monotonic() + 120
        while True:  # it loads the model first (slowly under strace)
            assert proc.poll() is None, f"exited with {proc.returncode}: {errors.read_text()}"
            try:
                client = AsyncTcpClient("127.0.0.1", port)
                await client.connect()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never listened"
                await asyncio.sleep(0.2)
        try:
            await client.write_event(AudioStart(16000, 2, 1).event())
            for start in range(0, len(pcm), 640):  # 20 ms chunks
                await client.write_event(AudioChunk(16000, 2, 1, pcm[start : start + 640]).event())
            await client.write_event(AudioStop().event())
            await client.write_event(Describe().event())  # its info answer marks the end
            types = []
            while (event := await asyncio.wait_for(client.read_event(), 60)) is not None:
                if Info.is_type(event.type):
                    return types
                types.append(event.type)
            return types
        finally:
            await client.disconnect()

    with errors.open("w") as stderr:
        proc = subprocess.Popen([*prefix, *command], stderr=stderr, env=env)
        try:
            types = asyncio.run(asyncio.wait_for(stream(), 240))
            pid = int(pid_file.read_text()) if pid_file is not None else proc.pid
            os.kill(pid, signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if pid_file is not None and pid_file.exists():  # strace killed would leave it running
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return types, code, errors.read_text()


MDWE_WRAPPER = """
import ctypes, os, sys
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(f"PR_SET_MDWE: {os.strerror(ctypes.get_errno())}")
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_wyoming_daemon_serves_under_the_units_write_xor_execute_rule(tmp_path, loud_model_path):
    """MemoryDenyWriteExecute=yes: emulated with PR_SET_MDWE (Linux >= 6.3), the same W^X rule. The
    daemon must load onnxruntime, detect and stop cleanly under it (wakeword.service cannot: the
    PortAudio callback needs write+execute memory)."""
    assert unit_settings(WYOMING_UNIT)["MemoryDenyWriteExecute"] == ["yes"]
    wrapper = [sys.executable, "-c", MDWE_WRAPPER]
    control = subprocess.run(  # the wrapper really enforces W^X
        [*wrapper, sys.executable, "-c", "import mmap; mmap.mmap(-1, 4096, prot=7)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "PR_SET_MDWE" in control.stderr:
        pytest.skip(f"this kernel cannot enforce W^X per process: {control.stderr.strip()}")
    assert control.returncode != 0 and "PermissionError" in control.stderr, control.stderr

    types, code, stderr = wyoming_round_trip(wrapper, loud_model_path, tmp_path)
    assert types == ["detection"], stderr
    assert code == 0, stderr


@needs_systemd_analyze
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace missing (apt install strace)")
def test_wyoming_daemon_serves_under_the_units_system_call_filter(tmp_path, loud_model_path):
    """As for `listen`: every system call of a full client session (bind, accept, inference threads,
    shutdown on SIGTERM) is in the unit's allow list; the denied ones fail with EPERM, harmlessly."""
    filters = unit_settings(WYOMING_UNIT)["SystemCallFilter"]
    allowed = set().union(*(syscall_set(f, tmp_path) for f in filters if not f.startswith("~")))
    denied = set().union(*(syscall_set(f[1:], tmp_path) for f in filters if f.startswith("~")))
    trace, pid_file = tmp_path / "strace.out", tmp_path / "daemon.pid"
    inject = ",".join(f"?{name}" for name in sorted(denied))
    strace = ["strace", "-f", "-qq", "-o", str(trace), "-e", f"inject={inject}:error=EPERM"]
    # sh writes the pid the daemon will have (exec keeps it), so SIGTERM goes to it, not to strace.
    prefix = [*strace, "sh", "-c", 'echo $$ > "$0"; exec "$@"', str(pid_file)]
    try:
        types, code, stderr = wyoming_round_trip(prefix, loud_model_path, tmp_path, pid_file)
    except AssertionError as error:
        if "ptrace" in str(error):
            pytest.skip(f"strace cannot trace here: {str(error)[:200]}")
        raise
    assert types == ["detection"], stderr
    assert code == 0, stderr
    used = set(re.findall(r"^\d+\s+([a-z0-9_]+)\(", trace.read_text(), flags=re.M))
    assert {"bind", "listen", "accept4"} <= used, "strace did not see the server's sockets"
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
    wyoming = plan("--wyoming")
    assert f"{WYOMING_UNIT} /etc/systemd/system/{WYOMING_NAME}" in wyoming
    assert f"{SYSTEM_UNIT} /etc/systemd/system/wakeword.service" in wyoming  # in addition to listen's
    if not Path(f"/etc/systemd/system/{WYOMING_NAME}").exists():  # else a re-run updates it: planned
        assert WYOMING_NAME not in plan()  # opt-in


def test_install_wyoming_only_plans_the_package_and_only_the_wyoming_unit():
    """--wyoming-only: venv, model, config and wakeword-wyoming.service; no listen unit, and (for a
    new account) no "audio" group. --wyoming keeps its meaning: both units."""

    def plan(*flags: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(DEPLOY / "install.sh"), "--dry-run", *flags], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result

    only = plan("--wyoming-only")
    both = plan("--wyoming")
    for result in (only, both):
        assert "pip install --quiet /" in result.stdout and "[systemd" in result.stdout  # the package
        assert "/etc/wakeword/hooks.env" in result.stdout or Path("/etc/wakeword/hooks.env").exists()
        assert f"{WYOMING_UNIT} /etc/systemd/system/{WYOMING_NAME}" in result.stdout
    assert f"{SYSTEM_UNIT} /etc/systemd/system/wakeword.service" in both.stdout
    if not Path("/etc/systemd/system/wakeword.service").exists():  # else a re-run updates it
        assert "wakeword.service" not in only.stdout
    # Neither enabled nor started: when systemd is PID 1 the plan enables only the Wyoming unit,
    # otherwise the hint names only that unit.
    assert "enable wakeword.service" not in only.stdout and "restart wakeword.service" not in only.stdout
    if "systemctl enable" in only.stdout:
        assert "systemctl enable wakeword-wyoming.service" in only.stdout
    else:
        assert only.stderr.count("enable --now wakeword-wyoming\n") == 1
        assert "enable --now wakeword wakeword-wyoming" in both.stderr
    if "useradd" in both.stdout:  # no wakeword account on this machine yet
        assert "--groups audio" in both.stdout
        assert "useradd" in only.stdout and "--groups audio" not in only.stdout


@pytest.mark.parametrize("flags", [["--user"], ["--allow-network"]], ids=lambda f: f[0])
def test_install_refuses_wyoming_only_with_flags_for_the_listen_unit(flags):
    result = subprocess.run(
        [str(DEPLOY / "install.sh"), "--dry-run", "--wyoming-only", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--wyoming-only" in result.stderr and result.stdout == ""  # refused before planning anything


def test_install_refuses_wyoming_in_user_mode():
    result = subprocess.run(
        [str(DEPLOY / "install.sh"), "--dry-run", "--user", "--wyoming"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--wyoming" in result.stderr and result.stdout == ""  # refused before planning anything


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


def test_example_config_commented_save_clips_is_valid_when_uncommented():
    import yaml

    from wakeword.config import config_from_mapping

    lines = EXAMPLE_CONFIG.read_text().splitlines()
    start = lines.index("  #save_clips:")
    block = [lines[start]] + [line for line in lines[start + 1 :] if line.startswith("  #  ")][:4]
    data = yaml.safe_load("\n".join(line.replace("#", "", 1) for line in block))
    clips = config_from_mapping({"audio": data}, str(EXAMPLE_CONFIG), DEPLOY).audio.save_clips
    assert clips is not None and str(clips.dir) == "/var/lib/wakeword/clips"
    assert (clips.near_miss_threshold, clips.max_clips, clips.max_megabytes) == (0.5, 1000, 100)


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
        cfg._CLIP_KEYS,
    ):
        assert set(keys) <= mentioned, f"not in config.example.yaml: {sorted(set(keys) - mentioned)}"
