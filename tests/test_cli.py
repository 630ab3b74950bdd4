"""The `wakeword` command as a real subprocess: output, one-line errors, exit codes.

Detections come from ``loud_model_path`` (fires on loud noise bursts) so they are
deterministic; the ``shipped_model_path`` tests run synthesised speech through the
trained model and skip while it has not been trained.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.speech import bursts_clip, espeak_missing, keyword_clip, other_speech_clip
from tests.virtual_mic import VirtualMic, make_virtual_mic_fixture

REPO_ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
FRAMES_PER_STEP_S = 8 * 0.01  # the loud model's frames_per_step at a 10 ms hop

virtual_mic = make_virtual_mic_fixture(scope="module")


def wakeword(*args: str, env: dict[str, str] | None = None, input: bytes | None = None, timeout: float = 120):
    """Run ``python -m wakeword.cli ARGS`` (the console script's main) and capture everything."""
    return subprocess.run(
        [sys.executable, "-m", "wakeword.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("wakeword: error: ")]
    assert len(errors) == 1, stderr
    for needle in needles:
        assert needle in errors[0]
    return errors[0]


def json_lines(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def bursts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bursts_clip(tmp_path_factory.mktemp("cli") / "bursts.wav", [0.8, 2.6], 4.0)


@pytest.fixture(scope="module")
def short_bursts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shorter clip for real-time `listen` runs."""
    return bursts_clip(tmp_path_factory.mktemp("cli") / "short.wav", [0.4, 1.5], 2.3)


@pytest.fixture(scope="module")
def no_sound_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment where no sound server can be reached (PulseAudio socket that does not exist)."""
    empty = tmp_path_factory.mktemp("no-sound")
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    env.update(PULSE_SERVER=f"unix:{empty / 'no-such-socket'}", XDG_RUNTIME_DIR=str(empty), HOME=str(empty))
    return env


# --------------------------------------------------------------------------- detect


def test_detect_prints_each_detection(loud_model_path: Path, bursts: Path) -> None:
    result = wakeword("detect", "--model", str(loud_model_path), str(bursts))
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{bursts}: loud at ") for line in lines)


def test_detect_json_parses_with_the_documented_fields(loud_model_path: Path, bursts: Path) -> None:
    result = wakeword("detect", "--json", "--model", str(loud_model_path), str(bursts))
    assert result.returncode == 0, result.stderr.decode()
    records = json_lines(result)
    assert [r["wake_word"] for r in records] == ["loud", "loud"]
    assert all(r["file"] == str(bursts) for r in records)
    assert all(0 < r["score"] <= 1 for r in records)
    # detection times are after each burst starts and within its 0.4 s
    assert 0.8 < records[0]["time"] < 1.2
    assert 2.6 < records[1]["time"] < 3.0


def test_detect_44k_stereo_file_gives_the_same_detections(
    loud_model_path: Path, bursts: Path, tmp_path: Path
) -> None:
    audio, _ = sf.read(bursts, dtype="float32")
    import soxr

    stereo = np.repeat(soxr.resample(audio, RATE, 44100)[:, None], 2, axis=1)
    converted = tmp_path / "bursts-44k-stereo.wav"
    sf.write(converted, stereo, 44100, subtype="PCM_24")
    base = json_lines(wakeword("detect", "--json", "--model", str(loud_model_path), str(bursts)))
    result = wakeword("detect", "--json", "--model", str(loud_model_path), str(converted))
    assert result.returncode == 0, result.stderr.decode()
    other = json_lines(result)
    assert len(other) == len(base) == 2
    for a, b in zip(base, other, strict=True):
        assert abs(a["time"] - b["time"]) <= FRAMES_PER_STEP_S


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.wav", b"", "empty"),
        ("corrupt.wav", b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk" + bytes(200), "not a readable audio file"),
        ("missing.wav", None, "no such file"),
    ],
)
def test_detect_bad_file_is_one_line_and_the_others_continue(
    loud_model_path: Path, bursts: Path, tmp_path: Path, name: str, content: bytes | None, needle: str
) -> None:
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content)
    result = wakeword("detect", "--model", str(loud_model_path), str(bad), str(bursts))
    assert_one_line_error(result, 4, needle, str(bad))
    assert len(result.stdout.decode().splitlines()) == 2  # the good file after it still ran


def test_detect_directory_is_an_audio_error(loud_model_path: Path, tmp_path: Path) -> None:
    assert_one_line_error(wakeword("detect", "--model", str(loud_model_path), str(tmp_path)), 4, "directory")


def test_bad_model_path_is_a_model_error(bursts: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    assert_one_line_error(wakeword("detect", "--model", str(missing), str(bursts)), 3, str(missing))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x01garbage")
    assert_one_line_error(wakeword("detect", "--model", str(garbage), str(bursts)), 3, str(garbage))


def test_bad_config_is_a_config_error(bursts: Path, tmp_path: Path, loud_model_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"models:\n  - path: {loud_model_path}\n    threshold: high\n")
    line = assert_one_line_error(wakeword("detect", "--config", str(config), str(bursts)), 2, str(config))
    assert "threshold" in line
    config.write_text("models: [unclosed\n")
    assert_one_line_error(wakeword("listen", "--config", str(config), "--input", str(bursts)), 2, "YAML")
    assert_one_line_error(wakeword("detect", "--config", str(tmp_path / "none.yaml"), str(bursts)), 2)


def test_bad_threshold_is_a_config_error(loud_model_path: Path, bursts: Path) -> None:
    result = wakeword("detect", "--threshold", "1.5", "--model", str(loud_model_path), str(bursts))
    assert_one_line_error(result, 2, "--threshold")


def test_usage_errors_exit_2() -> None:
    assert wakeword().returncode == 2
    assert wakeword("detect").returncode == 2  # FILE is required
    assert wakeword("listen", "--no-such-flag").returncode == 2


@pytest.mark.parametrize("command", [[], ["listen"], ["detect"], ["devices"]])
def test_help_on_every_command_documents_exit_codes(command: list[str]) -> None:
    result = wakeword(*command, "--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    assert "exit codes:" in text and "AudioError" in text


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "wakeword"
    if not script.exists():
        pytest.skip("the wakeword console script is not installed in this environment (pip install -e .)")
    result = subprocess.run([str(script), "--version"], capture_output=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.decode().startswith("wakeword ")


# --------------------------------------------------------------------------- listen


def test_listen_file_runs_to_the_end_and_equals_detect(loud_model_path: Path, short_bursts: Path) -> None:
    offline = json_lines(wakeword("detect", "--json", "--model", str(loud_model_path), str(short_bursts)))
    assert len(offline) == 2
    result = wakeword("listen", "--json", "--model", str(loud_model_path), "--input", str(short_bursts))
    assert result.returncode == 0, result.stderr.decode()
    live = json_lines(result)
    assert [r["wake_word"] for r in live] == [r["wake_word"] for r in offline]
    for a, b in zip(live, offline, strict=True):
        assert abs(a["time"] - b["time"]) <= FRAMES_PER_STEP_S


def test_listen_no_realtime_is_fast_and_the_same(loud_model_path: Path, bursts: Path) -> None:
    result = wakeword(
        "listen", "--json", "--no-realtime", "--model", str(loud_model_path), "--input", str(bursts)
    )
    assert result.returncode == 0
    assert len(json_lines(result)) == 2


def test_listen_stdin_pipe_with_an_odd_trailing_byte(loud_model_path: Path, bursts: Path) -> None:
    audio, _ = sf.read(bursts, dtype="int16")
    raw = audio.astype("<i2").tobytes() + b"\x01"
    result = wakeword("listen", "--json", "--model", str(loud_model_path), "--input", "-", input=raw)
    assert result.returncode == 0, result.stderr.decode()
    assert len(json_lines(result)) == 2
    stderr = result.stderr.decode()
    assert "odd trailing byte" in stderr and "Traceback" not in stderr


def test_listen_stdin_through_a_shell_pipe(loud_model_path: Path, bursts: Path, tmp_path: Path) -> None:
    """`producer | wakeword listen --input -`, the shape of the arecord recipe (sox stands in for arecord)."""
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed")
    command = (
        f"sox {bursts} -t raw -r 16000 -e signed -b 16 -c 1 - | "
        f"{sys.executable} -m wakeword.cli listen --json --model {loud_model_path} --input -"
    )
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert len(json_lines(result)) == 2


def test_listen_hook_flag_runs_the_command(loud_model_path: Path, bursts: Path, tmp_path: Path) -> None:
    out = tmp_path / "hook.out"
    result = wakeword(
        "listen",
        "--no-realtime",
        "--model",
        str(loud_model_path),
        "--input",
        str(bursts),
        "--hook",
        f'echo "$WAKEWORD_NAME" >> {out}',
    )
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_text().split() == ["loud", "loud"]


def test_listen_sigterm_exits_0(loud_model_path: Path, tmp_path: Path) -> None:
    long_clip = bursts_clip(tmp_path / "long.wav", [], 120.0)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wakeword.cli",
            "listen",
            "--model",
            str(loud_model_path),
            "--input",
            str(long_clip),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        buffered = b""
        while b"listening for" not in buffered and time.monotonic() < deadline:
            buffered += proc.stderr.readline()
        assert b"listening for" in buffered
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in stderr


def test_listen_without_a_sound_server_says_no_input_device(
    loud_model_path: Path, no_sound_env: dict[str, str]
) -> None:
    result = wakeword("listen", "--model", str(loud_model_path), env=no_sound_env, timeout=60)
    assert_one_line_error(result, 4, "no input device found; use --input FILE or --input -")


def test_devices_without_a_sound_server(no_sound_env: dict[str, str]) -> None:
    assert_one_line_error(wakeword("devices", env=no_sound_env), 4, "no input device found")


def test_devices_lists_the_virtual_mic(virtual_mic: VirtualMic) -> None:
    result = wakeword("devices", env=virtual_mic.env)
    assert result.returncode == 0, result.stderr.decode()
    rows = [line.split() for line in result.stdout.decode().splitlines()]
    pulse = [row for row in rows if "pulse" in row]
    assert pulse, result.stdout.decode()
    assert "16000," in pulse[0]  # 16 kHz accepted (the sink is 16 kHz mono)


def test_listen_on_the_virtual_mic(virtual_mic: VirtualMic, loud_model_path: Path, tmp_path: Path) -> None:
    clip = bursts_clip(tmp_path / "clip.wav", [0.3, 1.6], 2.5)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wakeword.cli",
            "listen",
            "--json",
            "--model",
            str(loud_model_path),
            "--device",
            "pulse",
        ],
        cwd=REPO_ROOT,
        env=virtual_mic.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        buffered = b""
        while b"listening for" not in buffered and time.monotonic() < deadline and proc.poll() is None:
            buffered += proc.stderr.readline()
        assert b"listening for" in buffered, buffered.decode()
        virtual_mic.play(clip)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()
    records = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [r["wake_word"] for r in records] == ["loud", "loud"]


# --------------------------------------------------------------------------- the shipped model


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory):
    reason = espeak_missing()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("speech")
    return keyword_clip(folder / "espresso.wav"), other_speech_clip(folder / "other.wav")


def test_shipped_model_detect_fires_once_on_espresso_and_never_on_other_speech(
    shipped_model_path: Path, speech
) -> None:
    keyword, other = speech
    result = wakeword("detect", "--json", str(keyword.path), str(other.path))
    assert result.returncode == 0, result.stderr.decode()
    records = json_lines(result)
    assert [r["file"] for r in records] == [str(keyword.path)]
    assert records[0]["wake_word"] == "espresso"
    assert keyword.speech_start_s < records[0]["time"] < keyword.speech_end_s + 1.5


def test_shipped_model_listen_equals_detect(shipped_model_path: Path, speech) -> None:
    keyword, other = speech
    for clip in (keyword, other):
        offline = json_lines(wakeword("detect", "--json", str(clip.path)))
        result = wakeword("listen", "--json", "--input", str(clip.path))
        assert result.returncode == 0, result.stderr.decode()
        live = json_lines(result)
        assert len(live) == len(offline)
        for a, b in zip(live, offline, strict=True):
            assert abs(a["time"] - b["time"]) <= FRAMES_PER_STEP_S


@pytest.fixture
def no_portaudio_env(tmp_path: Path) -> dict[str, str]:
    """Python where `import sounddevice` fails as it does without libportaudio2.

    A stand-in: PortAudio cannot be uninstalled on this machine, so a module earlier on
    PYTHONPATH raises the same OSError the real sounddevice raises when the library is missing.
    """
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "sounddevice.py").write_text('raise OSError("PortAudio library not found")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stub), str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def test_without_portaudio_listen_and_devices_say_no_input_device(
    loud_model_path: Path, no_portaudio_env: dict[str, str]
) -> None:
    result = wakeword("listen", "--model", str(loud_model_path), env=no_portaudio_env)
    assert_one_line_error(result, 4, "no input device found", "PortAudio library not found")
    assert_one_line_error(wakeword("devices", env=no_portaudio_env), 4, "no input device found")


def test_without_portaudio_file_input_still_works(
    loud_model_path: Path, bursts: Path, no_portaudio_env: dict[str, str]
) -> None:
    result = wakeword(
        "listen",
        "--json",
        "--no-realtime",
        "--model",
        str(loud_model_path),
        "--input",
        str(bursts),
        env=no_portaudio_env,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert len(json_lines(result)) == 2
