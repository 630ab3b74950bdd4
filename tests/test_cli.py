"""The `wakeword` command as a real subprocess: output, one-line errors, exit codes.

Detections come from ``loud_model_path`` (fires on loud noise bursts) so they are
deterministic; the ``shipped_model_path`` tests run synthesised speech through the
trained model and skip while it has not been trained.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
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


def cli_command(*args: str) -> list[str]:
    """``python -m wakeword.cli ARGS``: the console script's main, from this checkout."""
    return [sys.executable, "-m", "wakeword.cli", *args]


def wait_unread(proc: subprocess.Popen, read_end: int, timeout: float = 60.0) -> tuple[int, list[bytes]]:
    """Wait for a process whose output pipe nobody read (killing it after ``timeout``), then
    return its exit code and what it left in the pipe."""
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    os.set_blocking(read_end, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    os.close(read_end)
    return code, chunks


def wakeword(*args: str, env: dict[str, str] | None = None, input: bytes | None = None, timeout: float = 120):
    """Run :func:`cli_command` and capture everything."""
    return subprocess.run(
        cli_command(*args),
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
        cli_command("listen", "--model", str(loud_model_path), "--input", str(long_clip)),
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
        cli_command("listen", "--json", "--model", str(loud_model_path), "--device", "pulse"),
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


# --------------------------------------------------------------------------- listen's stdout


MANY = 200  # detections in `many_bursts`: more than StdoutSink's queue (100) plus a 4 KiB pipe of lines


@pytest.fixture(scope="module")
def many_bursts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 noise bursts 0.7 s apart (the loud model's refractory period is 0.5 s): 200 detections."""
    starts = [0.2 + 0.7 * i for i in range(MANY)]
    return bursts_clip(tmp_path_factory.mktemp("cli") / "many.wav", starts, starts[-1] + 0.8, burst_s=0.3)


def hook_config(path: Path, hook_log: Path) -> Path:
    """A config whose one hook appends a line per detection (a high cap: --no-realtime fires fast)."""
    path.write_text(
        f"hooks:\n  - command: 'echo \"$WAKEWORD_STREAM_TIME\" >> {hook_log}'\n    max_concurrent: 100\n"
    )
    return path


def listen_many(loud_model_path: Path, many_bursts: Path, config: Path, *extra: str) -> list[str]:
    cmd = ["listen", "--no-realtime", "--config", str(config), "--model", str(loud_model_path)]
    return cli_command(*cmd, "--input", str(many_bursts), *extra)


def test_listen_prints_every_detection_in_order_when_stdout_is_read(
    loud_model_path: Path, many_bursts: Path, tmp_path: Path
) -> None:
    offline = json_lines(wakeword("detect", "--json", "--model", str(loud_model_path), str(many_bursts)))
    assert len(offline) == MANY
    hook_log = tmp_path / "hooks.log"
    config = hook_config(tmp_path / "config.yaml", hook_log)
    result = subprocess.run(
        listen_many(loud_model_path, many_bursts, config, "--json"),
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "not being read" not in stderr and "not printed" not in stderr
    live = json_lines(result)
    assert [(r["wake_word"], r["frame"]) for r in live] == [(r["wake_word"], r["frame"]) for r in offline]
    assert all(abs(a["time"] - b["time"]) <= FRAMES_PER_STEP_S for a, b in zip(live, offline, strict=True))
    assert sorted(live[0]) == ["frame", "score", "time", "wake_word", "wall_time"]  # --json unchanged
    assert len(hook_log.read_text().split()) == MANY

    text = subprocess.run(
        listen_many(loud_model_path, many_bursts, config), cwd=REPO_ROOT, capture_output=True, timeout=120
    )
    assert text.returncode == 0, text.stderr.decode()
    pattern = re.compile(r"\d\d:\d\d:\d\d loud at (\d+\.\d\d) s \(score (\d\.\d{3})\)")
    parsed = [pattern.fullmatch(line) for line in text.stdout.decode().splitlines()]
    assert len(parsed) == len(live) and all(parsed), text.stdout.decode()[:500]
    for match, record in zip(parsed, live, strict=True):  # the same detections, in the same order
        assert abs(float(match.group(1)) - record["time"]) <= 0.006
        assert float(match.group(2)) == pytest.approx(record["score"], abs=0.0006)


def test_listen_never_blocks_on_a_stdout_that_is_not_read(
    loud_model_path: Path, many_bursts: Path, tmp_path: Path
) -> None:
    """`wakeword listen | stuck-consumer`: a full pipe drops lines; detection, hooks and exit carry on."""
    drained_log = tmp_path / "drained-hooks.log"
    drained = subprocess.run(
        listen_many(
            loud_model_path, many_bursts, hook_config(tmp_path / "drained.yaml", drained_log), "--json"
        ),
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert drained.returncode == 0, drained.stderr.decode()
    expected = json_lines(drained)
    assert len(expected) == len(drained_log.read_text().split()) == MANY

    hook_log = tmp_path / "stalled-hooks.log"
    config = hook_config(tmp_path / "stalled.yaml", hook_log)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # a few dozen lines fill it
    err_path = tmp_path / "stderr.txt"
    started = time.monotonic()
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            listen_many(loud_model_path, many_bursts, config, "--json"),
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=err,
        )
    os.close(write_end)
    code, chunks = wait_unread(proc, read_end)  # nobody reads the pipe while it runs
    elapsed = time.monotonic() - started
    stderr = err_path.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Fatal Python error" not in stderr
    assert len(hook_log.read_text().split()) == len(expected)  # every detection still ran its hook
    warnings = [line for line in stderr.splitlines() if "stdout is not being read" in line]
    assert len(warnings) == 1, stderr
    assert " WARNING " in warnings[0] and "dropped 1 detection line(s) so far" in warnings[0]
    # What did reach the pipe is whole lines, the first ones, in order; the rest is accounted for.
    printed = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
    assert 0 < len(printed) < len(expected) - 100
    assert [r["frame"] for r in printed] == [r["frame"] for r in expected[: len(printed)]]
    total = re.search(
        r"stdout still not read at exit: gave up on \d+ queued detection line\(s\); (\d+) not", stderr
    )
    assert total, stderr
    assert len(printed) + int(total.group(1)) == len(expected)
    print(f"\nstalled stdout: {len(printed)} lines printed of {len(expected)}, exited in {elapsed:.1f} s")


def test_listen_exits_quietly_when_stdout_is_closed(loud_model_path: Path, tmp_path: Path) -> None:
    """`wakeword listen | head -n 1`: the next detection after the reader is gone ends listen, exit 0."""
    clip = bursts_clip(tmp_path / "clip.wav", [0.3 + 0.7 * i for i in range(80)], 60.0, burst_s=0.3)
    proc = subprocess.Popen(
        cli_command("listen", "--model", str(loud_model_path), "--input", str(clip)),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader goes away after one line, as `head -n 1` does
        proc.wait(timeout=30)  # well before the 60 s of real-time input end
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"loud at " in first
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr and b"Exception ignored" not in stderr
    assert b"end of input" not in stderr


# --------------------------------------------------------------------------- listen's stderr (logging)

#: One log line as the daemons write it on stderr (service.setup_logging's format).
LOG_LINE = re.compile(r"\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) wakeword[.\w]*: .*")
DROPPED_LOGS = re.compile(r"stderr was not being read \(is the consumer stuck\?\): dropped (\d+) log line")


def small_pipe() -> tuple[int, int]:
    """A pipe that holds 4 KiB: a few dozen log lines fill it."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    return read_end, write_end


def log_lines(data: bytes) -> list[str]:
    """Log lines from stderr bytes, checking that every one is a whole, well-formed line."""
    text = data.decode()
    assert "Traceback" not in text and "Logging error" not in text and "Fatal Python error" not in text
    assert not text or text.endswith("\n"), text[-300:]
    lines = text.splitlines()
    assert all(LOG_LINE.fullmatch(line) for line in lines), text[:2000]
    return lines


def detected_times(lines: list[str]) -> list[float]:
    return [
        float(m.group(1))
        for line in lines
        if (m := re.search(r" detected loud \(score .*\) at (\S+) s$", line))
    ]


def test_listen_never_blocks_on_a_stderr_that_is_not_read(
    loud_model_path: Path, many_bursts: Path, tmp_path: Path
) -> None:
    """`wakeword -v listen 2>&1 | stuck-consumer`: log lines past the queue are dropped; hooks, exit go on."""
    hook_log = tmp_path / "hooks.log"
    config = hook_config(tmp_path / "config.yaml", hook_log)
    read_end, write_end = small_pipe()
    started = time.monotonic()
    proc = subprocess.Popen(
        listen_many(loud_model_path, many_bursts, config, "-v"),  # 2+ log lines per detection
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=write_end,
    )
    os.close(write_end)
    code, chunks = wait_unread(proc, read_end)  # nobody reads stderr while it runs
    elapsed = time.monotonic() - started
    lines = log_lines(b"".join(chunks))
    assert code == 0, "\n".join(lines)
    assert len(hook_log.read_text().split()) == MANY  # every detection still ran its hook
    # What reached the pipe is the first lines, whole and in order; the rest was dropped.
    assert 10 < len(lines) < 2 * MANY
    times = detected_times(lines)
    assert times and times == sorted(times) and len(times) < MANY
    assert not any("end of input" in line for line in lines)
    print(f"\nstalled stderr: {len(lines)} log lines written, exited in {elapsed:.1f} s")


def test_listen_reports_dropped_log_lines_once_stderr_is_read_again(
    loud_model_path: Path, many_bursts: Path, tmp_path: Path
) -> None:
    """All detections run while stderr is stuck; once it is read, one warning counts the dropped lines."""
    audio, _ = sf.read(many_bursts, dtype="int16")
    pcm = audio.astype("<i2").tobytes()

    def listen(hook_log: Path) -> list[str]:
        config = hook_config(tmp_path / f"{hook_log.stem}.yaml", hook_log)
        return cli_command(
            "-v", "listen", "--config", str(config), "--model", str(loud_model_path), "--input", "-"
        )

    reference = subprocess.run(
        listen(tmp_path / "reference.log"), cwd=REPO_ROOT, input=pcm, capture_output=True, timeout=120
    )
    assert reference.returncode == 0, reference.stderr.decode()
    expected = log_lines(reference.stderr)
    assert len(detected_times(expected)) == MANY

    hook_log = tmp_path / "stalled.log"
    read_end, write_end = small_pipe()
    proc = subprocess.Popen(
        listen(hook_log),
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=write_end,
    )
    os.close(write_end)
    received: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            received.append(chunk)

    def feed() -> None:  # all the audio, as fast as listen takes it; stdin stays open
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(pcm)
            proc.stdin.flush()

    feeder = threading.Thread(target=feed, daemon=True)
    reader = threading.Thread(target=drain, daemon=True)
    try:
        feeder.start()
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and len(hook_log.read_text().split() if hook_log.exists() else []) < MANY
        ):
            time.sleep(0.1)
        assert len(hook_log.read_text().split()) == MANY  # all of it while nobody read stderr
        assert proc.poll() is None  # still waiting for more audio on stdin
        feeder.join(timeout=30)
        reader.start()  # stderr is read again ...
        time.sleep(0.5)
        proc.stdin.close()  # ... and the input ends
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    os.close(read_end)
    lines = log_lines(b"".join(received))
    assert code == 0, "\n".join(lines)
    warnings = [(i, m) for i, line in enumerate(lines) if (m := DROPPED_LOGS.search(line))]
    assert len(warnings) == 1, "\n".join(lines)
    at, match = warnings[0]
    assert " WARNING wakeword.output: " in lines[at]
    assert any("end of input" in line for line in lines[at + 1 :])  # logging carried on after it
    # Nothing lost silently: every line of the reference run was written or counted as dropped.
    assert len(lines) - 1 + int(match.group(1)) == len(expected)
    times = detected_times(lines)
    assert times == sorted(times) and 0 < len(times) < MANY


def test_listen_2_to_1_into_a_closed_pipe_exits_quietly(loud_model_path: Path, tmp_path: Path) -> None:
    """`wakeword -v listen 2>&1 | head -n 1`: the reader goes away, listen ends at the next detection: 0."""
    clip = bursts_clip(tmp_path / "clip.wav", [0.3 + 0.7 * i for i in range(80)], 60.0, burst_s=0.3)
    proc = subprocess.Popen(
        cli_command("-v", "listen", "--model", str(loud_model_path), "--input", str(clip)),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        first = proc.stdout.readline()
        proc.stdout.close()
        code = proc.wait(timeout=30)  # well before the 60 s of real-time input end
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert LOG_LINE.fullmatch(first.decode().rstrip("\n")), first
    assert code == 0


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
