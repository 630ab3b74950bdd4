"""A real microphone for tests: a private PulseAudio daemon with null sinks.

Whatever is played into a null sink (``paplay --device=SINK``) comes out of its
``SINK.monitor`` source, which PortAudio records through ALSA's ``pulse`` device.
Each fixture starts its own daemon in a private ``XDG_RUNTIME_DIR`` so parallel
sessions do not collide, and kills exactly that daemon at teardown.

Usage in a test module::

    virtual_mic = make_virtual_mic_fixture()            # 16 kHz mono sink "vmic"

    def test_x(virtual_mic): virtual_mic.play(wav)

The fixture also sets ``XDG_RUNTIME_DIR``/``PULSE_SERVER`` in ``os.environ`` (the
test process records through it) and re-initialises PortAudio, because PortAudio
lists ALSA devices once, at initialisation, and ``pulse`` only works once the
server is up. ``env`` is the environment for subprocesses under test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


class VirtualMicUnavailable(RuntimeError):
    """PulseAudio cannot run here; the message is the reason tests skip with."""


@dataclass
class VirtualMic:
    """A running private PulseAudio daemon."""

    runtime_dir: Path
    pid: int
    sink: str
    env: dict[str, str] = field(default_factory=dict)
    rate: int = 16000
    channels: int = 1

    @property
    def source(self) -> str:
        return f"{self.sink}.monitor"

    def pactl(self, *args: str) -> str:
        result = subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=15, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def add_sink(self, name: str, rate: int, channels: int) -> str:
        """Another null sink (e.g. 44.1 kHz stereo); returns its monitor source's name."""
        self.pactl(
            "load-module", "module-null-sink", f"sink_name={name}", f"rate={rate}", f"channels={channels}"
        )
        return f"{name}.monitor"

    def set_default_source(self, source: str) -> None:
        self.pactl("set-default-source", source)

    def play(self, wav: Path, sink: str | None = None, timeout: float = 60.0) -> None:
        """Play a file into a sink and wait until it has been played."""
        subprocess.run(
            ["paplay", "--latency-msec=20", f"--device={sink or self.sink}", str(wav)],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def play_async(self, wav: Path, sink: str | None = None, latency_ms: int = 20) -> subprocess.Popen:
        """Play ``wav`` into the sink; ``latency_ms`` is paplay's buffer: 20 ms keeps latency tests
        tight, a longer one keeps a loaded machine from starving the player (gaps in what is played)."""
        return subprocess.Popen(
            ["paplay", f"--latency-msec={latency_ms}", f"--device={sink or self.sink}", str(wav)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        """SIGKILL the server, as a crash or an unplugged device would end it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and _alive(self.pid):
            time.sleep(0.05)

    def restart(self) -> None:
        """Start the server again on the same socket with the same sink (``pid`` is updated)."""
        (self.runtime_dir / "pulse" / "pid").unlink(missing_ok=True)  # a stale pid file blocks -D
        subprocess.run(
            ["pulseaudio", *_daemon_args(self.sink, self.rate, self.channels)],
            env=self.env,
            capture_output=True,
            timeout=30,
            check=True,
        )
        self.pid = int((self.runtime_dir / "pulse" / "pid").read_text().strip())
        self.pactl("set-default-sink", self.sink)
        self.set_default_source(self.source)

    def stop(self) -> None:
        """Kill this daemon (by its pid) and remove its runtime directory."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and _alive(self.pid):
            time.sleep(0.05)
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child still "exists": treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _daemon_args(sink: str, rate: int, channels: int) -> list[str]:
    return [
        "-D",
        "--exit-idle-time=-1",
        "-n",
        "--load=module-native-protocol-unix",
        f"--load=module-null-sink sink_name={sink} rate={rate} channels={channels}",
    ]


def start_virtual_mic(sink: str = "vmic", rate: int = 16000, channels: int = 1) -> VirtualMic:
    """Start a private PulseAudio with one null sink whose monitor is the default source."""
    for tool in ("pulseaudio", "pactl", "paplay"):
        if shutil.which(tool) is None:
            raise VirtualMicUnavailable(f"{tool} is not installed (deploy/install-system-packages.sh test)")
    runtime_dir = Path(tempfile.mkdtemp(prefix="wakeword-pulse-"))
    os.chmod(runtime_dir, 0o700)
    env = dict(os.environ)
    env.pop("PULSE_SERVER", None)
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    env["HOME"] = str(runtime_dir)  # cookie and state stay private too
    result = subprocess.run(
        ["pulseaudio", *_daemon_args(sink, rate, channels)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    pid_file = runtime_dir / "pulse" / "pid"
    if result.returncode != 0 or not pid_file.exists():
        shutil.rmtree(runtime_dir, ignore_errors=True)
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise VirtualMicUnavailable(f"PulseAudio did not start (exit {result.returncode}): {reason}")
    pid = int(pid_file.read_text().strip())
    env["PULSE_SERVER"] = f"unix:{runtime_dir / 'pulse' / 'native'}"
    mic = VirtualMic(runtime_dir=runtime_dir, pid=pid, sink=sink, env=env, rate=rate, channels=channels)
    try:
        mic.pactl("set-default-sink", sink)
        mic.set_default_source(mic.source)
    except Exception:
        mic.stop()
        raise
    return mic


def reinitialise_portaudio() -> None:
    """Make PortAudio in this process re-list devices (it lists them once, at initialisation)."""
    try:
        import sounddevice as sd
    except OSError:
        return
    sd._terminate()
    sd._initialize()


def make_virtual_mic_fixture(scope: str = "module", sink: str = "vmic", rate: int = 16000, channels: int = 1):
    """A pytest fixture that yields a running :class:`VirtualMic` (skips, with the reason, if it cannot)."""

    @pytest.fixture(scope=scope)
    def virtual_mic() -> Iterator[VirtualMic]:
        try:
            mic = start_virtual_mic(sink, rate, channels)
        except VirtualMicUnavailable as exc:
            pytest.skip(str(exc))
        saved = {key: os.environ.get(key) for key in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
        os.environ["XDG_RUNTIME_DIR"] = mic.env["XDG_RUNTIME_DIR"]
        os.environ["PULSE_SERVER"] = mic.env["PULSE_SERVER"]
        reinitialise_portaudio()
        try:
            yield mic
        finally:
            mic.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            reinitialise_portaudio()

    return virtual_mic
