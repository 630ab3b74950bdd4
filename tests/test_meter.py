"""``listen --meter``: drawn in a real terminal (a private tmux server), silent without one.

tmux runs the daemon on the virtual microphone; ``capture-pane`` reads the screen while a
held-out synthetic "espresso" plays, and the espresso bar must rise from near empty to near
full, with the detection shown as the last one.
"""

from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.speech import HELD_OUT_VOICE, RATE, espeak_missing, synthesize
from tests.virtual_mic import VirtualMic, make_virtual_mic_fixture
from wakeword.meter import bar
from wakeword.model import WakeWordModel

virtual_mic = make_virtual_mic_fixture(scope="module")
SHIPPED_THRESHOLD = WakeWordModel.load(
    Path(__file__).resolve().parents[1] / "models" / "espresso.onnx"
).metadata.detector.threshold
#: The espresso bar, drawn at the shipped model's own default threshold.
BAR = re.compile(rf"^espresso\s+([0-9.]+)\s+\[([#|-]+)\] thr {re.escape(f'{SHIPPED_THRESHOLD:.2f}')}")
LEVEL = re.compile(r"^input\s+(-inf|-?[0-9.]+) dBFS \[")


@pytest.fixture(scope="module")
def word_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = espeak_missing()
    if reason:
        pytest.skip(reason)
    speech = synthesize("espresso", voice=HELD_OUT_VOICE)
    audio = np.concatenate([np.zeros(RATE // 2), 0.3 * speech / np.abs(speech).max(), np.zeros(RATE)])
    path = tmp_path_factory.mktemp("meter") / "word.wav"
    sf.write(str(path), audio.astype(np.float32), RATE, subtype="PCM_16")
    return path


class Tmux:
    """A tmux server of our own (its own socket), so nothing else's sessions are touched."""

    def __init__(self, folder: Path) -> None:
        self.socket = folder / "tmux.sock"

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, timeout=15, check=True
        )
        return result.stdout

    def screen(self) -> list[str]:
        return self("capture-pane", "-p", "-t", "meter").splitlines()

    def fill(self) -> int | None:
        """How many cells of the espresso bar are filled, or None while the meter is not drawn."""
        for line in self.screen():
            match = BAR.match(line.strip())
            if match:
                return match.group(2).count("#")
        return None

    def level(self) -> float | None:
        """The input level the meter shows (dBFS), or None while it is not drawn."""
        for line in self.screen():
            match = LEVEL.match(line.strip())
            if match:
                return float(match.group(1))
        return None

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True, timeout=15)


def _wait(predicate, limit: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()


def test_meter_bar_rises_while_the_word_plays(
    virtual_mic: VirtualMic, shipped_model_path: Path, word_wav: Path, tmp_path: Path
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (deploy/install-system-packages.sh test installs it)")
    exit_file = tmp_path / "exit-code"
    env = " ".join(f"{k}={shlex.quote(virtual_mic.env[k])}" for k in ("PULSE_SERVER", "XDG_RUNTIME_DIR"))
    command = (
        f"env {env} XDG_CONFIG_HOME={shlex.quote(str(tmp_path))} "
        f"{shlex.quote(sys.executable)} -m wakeword.cli listen --meter --device pulse "
        f"--model {shlex.quote(str(shipped_model_path))}; "
        f"echo $? > {shlex.quote(str(exit_file))}"
    )
    tmux = Tmux(tmp_path)
    try:
        tmux("new-session", "-d", "-s", "meter", "-x", "100", "-y", "20", command)
        assert _wait(lambda: tmux.fill() is not None), tmux.screen()
        time.sleep(1.5)  # the idle null sink's first capture callback
        quiet = tmux.fill()
        player = virtual_mic.play_async(word_wav)
        fills, levels = [], []
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            fills.append(tmux.fill() or 0)
            levels.append(tmux.level() or -math.inf)
            time.sleep(0.05)
        assert player.wait(10) == 0
        cells = next(
            len(BAR.match(line.strip()).group(2)) for line in tmux.screen() if BAR.match(line.strip())
        )
        assert quiet is not None and quiet <= 0.1 * cells, tmux.screen()
        assert max(fills) >= 0.8 * cells, (fills, tmux.screen())  # the bar rose with the word
        assert max(levels) > -40.0, levels  # the input level rose too (the word peaks near -10 dBFS)
        screen = "\n".join(tmux.screen())
        assert "last: espresso at" in screen
        assert re.search(r"^\d\d:\d\d:\d\d espresso at [0-9.]+ s", screen, re.M)  # the line above the meter
        tmux("send-keys", "-t", "meter", "C-c")
        assert _wait(exit_file.exists, 15.0)
        assert exit_file.read_text().strip() == "0"
    finally:
        tmux.kill()


def test_without_a_terminal_meter_prints_nothing_extra(loud_model_path: Path, word_wav: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wakeword.cli", "listen", "--meter", "--no-realtime", "--input", str(word_wav)]
        + ["--model", str(loud_model_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert all(line.startswith("{") for line in result.stdout.splitlines())  # detection lines only
    assert "dBFS" not in result.stdout + result.stderr


def test_bar_draws_the_threshold_marker() -> None:
    assert bar(0.5, 10, 0.9) == "[#####----|]"
    assert bar(1.0, 4) == "[####]" and bar(-1.0, 4) == "[----]"
