"""Faults injected into a running daemon, and bad input through the command line.

Everything here is real: `wakeword listen` as a subprocess, a private PulseAudio server that is
killed and restarted under it, SIGSTOP for CPU starvation, real shell hooks that hang, crash and
flood, a real NOTIFY_SOCKET datagram socket standing in for systemd. Assertions are on counts and
behaviour, never on timing; the recovery times are printed for the reliability report.

Models: ``loud_model_path`` (tests/conftest.py) fires once per loud noise burst, so every injected
"keyword" is known in advance and the count of detections is exact.

What the library-level tests already cover is not repeated here: tests/test_listen.py has the
in-process overrun gap (a stalling sink) and microphone-loss lifecycle tests, tests/test_hooks.py the
HookRunner limits one by one, tests/test_cli.py and tests/test_audio.py the common bad files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.notify import NotifySocket
from tests.test_listen import bursts_clip
from tests.virtual_mic import VirtualMic, VirtualMicUnavailable, start_virtual_mic

REPO_ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
STEP_S = 8 * 0.01  # the loud model's frames_per_step at a 10 ms hop
#: A log line written by wakeword's own logging (service.setup_logging's stderr format).
LOG_LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) wakeword[.:\w]*: ")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    listener = NotifySocket()
    yield listener
    listener.close()


class Daemon:
    """`python -m wakeword.cli ARGS` with stdout/stderr collected line by line, with arrival times."""

    def __init__(self, args: list[str], env: dict[str, str], stdin: int = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wakeword.cli", *args],
            cwd=REPO_ROOT,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self.err_bytes = 0
        self._readers = [self._reader(self.proc.stdout, self.out), self._reader(self.proc.stderr, self.err)]

    def _reader(self, stream, into: list[tuple[float, str]]) -> threading.Thread:
        def run() -> None:
            for raw in iter(stream.readline, b""):
                if into is self.err:
                    self.err_bytes += len(raw)
                into.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def wait_for(
        self, lines: list[tuple[float, str]], needle: str, count: int = 1, timeout: float = 60
    ) -> float:
        """Time the ``count``-th line containing ``needle`` arrived; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [t for t, line in list(lines) if needle in line]
            if len(hits) >= count:
                return hits[count - 1]
            if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                break
            time.sleep(0.02)
        raise AssertionError(
            f"no {count} line(s) with {needle!r} in time; stderr:\n{self.stderr_text()[-3000:]}"
        )

    def finish(self, sig: int | None = signal.SIGTERM, timeout: float = 60) -> int:
        try:
            if sig is not None and self.proc.poll() is None:
                self.proc.send_signal(sig)
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(5)
        return code

    def stdout_json(self) -> list[dict]:
        return [json.loads(line) for _, line in self.out if line.strip()]

    def stderr_text(self) -> str:
        return "\n".join(line for _, line in self.err)

    def log_lines(self, needle: str = "") -> list[str]:
        return [line for _, line in self.err if LOG_LINE.match(line) and needle in line]


def quiet_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(extra)
    return env


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


def children(pid: int) -> set[int]:
    """Direct child processes of ``pid`` (all its threads)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(p) for p in f.read().split())
    return found


def processes_with_env(token: str) -> list[int]:
    """Live processes whose environment contains ``token`` (hooks inherit the daemon's environment)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if token.encode() in Path(f"/proc/{entry}/environ").read_bytes():
                stat = Path(f"/proc/{entry}/stat").read_text()
                if stat.rsplit(") ", 1)[1][0] != "Z":
                    found.append(int(entry))
    return found


def sample_while(proc: subprocess.Popen, probe: Callable[[], None], every_s: float) -> threading.Thread:
    def run() -> None:
        while proc.poll() is None:
            probe()
            time.sleep(every_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def in_bursts(time_s: float, starts: list[float], burst_s: float = 0.4) -> float | None:
    """The burst start a detection time belongs to (fires inside the burst, up to one step late)."""
    for start in starts:
        if start < time_s <= start + burst_s + STEP_S:
            return start
    return None


# --------------------------------------------------------------------------- (1) microphone lost


def restart_pulseaudio(mic: VirtualMic) -> None:
    """Start PulseAudio again on the same socket path, with the same null sink (mic.pid is updated).

    The killed daemon may linger as a zombie (nothing reaps it here), and PulseAudio would take its
    stale pid file for a running server, so the pid file goes first.
    """
    (mic.runtime_dir / "pulse" / "pid").unlink(missing_ok=True)
    subprocess.run(
        [
            "pulseaudio",
            "-D",
            "--exit-idle-time=-1",
            "-n",
            "--load=module-native-protocol-unix",
            f"--load=module-null-sink sink_name={mic.sink} rate=16000 channels=1",
        ],  # fmt: skip
        env=mic.env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    mic.pid = int((mic.runtime_dir / "pulse" / "pid").read_text().strip())
    mic.pactl("set-default-sink", mic.sink)
    mic.set_default_source(mic.source)


def test_microphone_lost_is_retried_and_capture_resumes_without_a_restart(
    loud_model_path: Path, tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """Kill the PulseAudio server behind `wakeword listen --device pulse`, wait, start it again."""
    try:
        mic = start_virtual_mic(sink="vmic-lost")
    except VirtualMicUnavailable as exc:
        pytest.skip(str(exc))
    clip = bursts_clip(tmp_path / "clip.wav", [0.3, 1.6], 2.5)
    daemon = None
    try:
        env = quiet_env(NOTIFY_SOCKET=str(notify_socket.path))
        env.update(XDG_RUNTIME_DIR=mic.env["XDG_RUNTIME_DIR"], PULSE_SERVER=mic.env["PULSE_SERVER"])
        daemon = Daemon(["listen", "--json", "--device", "pulse", "--model", str(loud_model_path)], env)
        daemon.wait_for(daemon.err, "listening for")
        mic.play(clip)
        daemon.wait_for(daemon.out, "loud", count=2, timeout=30)

        os.kill(mic.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        lost_at = daemon.wait_for(daemon.err, "audio input lost", timeout=30)
        time.sleep(2.5)  # the server stays away for several retry rounds
        assert daemon.proc.poll() is None, daemon.stderr_text()[-3000:]

        restart_pulseaudio(mic)
        back_at = time.monotonic()
        resumed_at = daemon.wait_for(daemon.err, "capturing again", timeout=60)
        mic.play(clip)
        daemon.wait_for(daemon.out, "loud", count=4, timeout=30)
        alive_until_stopped = daemon.proc.poll() is None
        code = daemon.finish()
    finally:
        if daemon is not None and daemon.proc.poll() is None:
            daemon.finish(signal.SIGKILL)
        mic.stop()
    print(
        f"\nmicrophone lost: noticed {lost_at - killed_at:.2f} s after the kill; capturing again "
        f"{resumed_at - back_at:.2f} s after PulseAudio came back"
    )
    assert code == 0, daemon.stderr_text()[-3000:]
    assert "Traceback" not in daemon.stderr_text()
    assert alive_until_stopped  # one process throughout: recovered without a restart
    assert [d["wake_word"] for d in daemon.stdout_json()] == ["loud"] * 4
    # One line when the input is lost, one when it is back; retries in between are not logged at INFO+.
    assert len(daemon.log_lines("audio input lost")) == 1, daemon.stderr_text()
    assert len(daemon.log_lines("capturing again")) == 1, daemon.stderr_text()
    # systemd's STATUS= said so while it was lost, and went back to the normal line afterwards.
    statuses = notify_socket.statuses()
    lost_status = [(t, s) for t, s in statuses if "lost" in s.lower()]
    assert lost_status and lost_status[0][0] >= killed_at, statuses
    after = [s for t, s in statuses if t > lost_status[0][0] and s.startswith("Listening for loud")]
    assert after, statuses
    assert after[-1].startswith("Listening for loud; 4 detections")


# --------------------------------------------------------------------------- (2) overload


def test_cpu_starvation_overruns_reach_the_log_and_systemd_status(
    loud_model_path: Path, tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """SIGSTOP the whole daemon for 3 s (CPU starvation): it drops audio, says so, and keeps detecting."""
    starts = [0.5, 5.5, 7.0]
    clip = bursts_clip(tmp_path / "clip.wav", starts, 8.0)
    config = tmp_path / "config.yaml"
    config.write_text(f"models: [{loud_model_path}]\naudio: {{buffer_s: 1}}\n")
    daemon = Daemon(
        ["listen", "--json", "--config", str(config), "--input", str(clip)],
        quiet_env(NOTIFY_SOCKET=str(notify_socket.path)),
    )
    rss: list[tuple[float, int]] = []
    sampler = sample_while(daemon.proc, lambda: rss.append((time.monotonic(), rss_kb(daemon.pid) or 0)), 0.2)
    try:
        first_at = daemon.wait_for(daemon.out, "loud", timeout=60)
        os.kill(daemon.pid, signal.SIGSTOP)
        time.sleep(3.0)
        os.kill(daemon.pid, signal.SIGCONT)
        code = daemon.finish(sig=None, timeout=60)  # runs to the end of the file
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGCONT)
        if daemon.proc.poll() is None:
            daemon.finish(signal.SIGKILL)
    sampler.join(2)
    assert code == 0, daemon.stderr_text()[-3000:]
    assert "Traceback" not in daemon.stderr_text()
    overrun_lines = daemon.log_lines("audio overrun")
    assert 1 <= len(overrun_lines) <= 2, daemon.stderr_text()  # rate-limited: one line per 5 s at most
    times = [d["time"] for d in daemon.stdout_json()]
    assert [in_bursts(t, starts) for t in times] == starts, times
    counts = [re.search(r"(\d+) detections, (\d+) overruns", s) for _, s in notify_socket.statuses()]
    final = [tuple(map(int, m.groups())) for m in counts if m][-1]
    assert final[0] == len(starts) and final[1] >= 1, notify_socket.statuses()
    warm = [kb for t, kb in rss if t >= first_at and kb]  # after models loaded and audio flowing
    print(
        f"\nCPU starvation: {overrun_lines[0].split(': ', 1)[1]}; "
        f"RSS {warm[0] / 1024:.1f} MB before the stall, at most {max(warm) / 1024:.1f} MB after"
    )
    assert max(warm) - warm[0] <= 5 * 1024  # memory stays bounded: the excess audio was dropped


# --------------------------------------------------------------------------- (3) hooks


def test_hook_storm_of_hanging_crashing_and_flooding_hooks_never_blocks_or_exhausts(
    loud_model_path: Path, tmp_path: Path
) -> None:
    """100 detections in 60 s of audio, each firing three bad hooks, through `wakeword listen`."""
    starts = [0.2 + 0.6 * i for i in range(100)]
    clip = bursts_clip(tmp_path / "storm.wav", starts, 60.5, burst_s=0.3)
    runs = Path(tempfile.mkdtemp(prefix="ws-"))  # short, so the hook labels in the log keep the name
    token = f"WAKEWORD_STORM_{os.getpid()}_{time.monotonic_ns()}"
    hooks = {
        "hang": f"echo x >> {runs}/hang; exec sleep 600",
        "crash": f'echo x >> {runs}/crash; echo "boom $WAKEWORD_NAME" >&2; exit 3',
        "flood": f"echo x >> {runs}/flood; head -c 4000000 /dev/zero; "
        "head -c 4000000 /dev/zero | tr '\\0' A >&2",
    }
    config = tmp_path / "config.yaml"
    config.write_text(
        f"models: [{loud_model_path}]\nhooks:\n"
        + "".join(
            f"  - command: {json.dumps(cmd)}\n    max_concurrent: 2\n"
            + ("    timeout_s: 1\n" if name == "hang" else "")
            for name, cmd in hooks.items()
        )
    )
    daemon = Daemon(["listen", "--json", "--no-realtime", "--config", str(config), "--input", str(clip)],
                    quiet_env(**{token: "1"}))  # fmt: skip
    most_children = [0]
    sampler = sample_while(
        daemon.proc,
        lambda: most_children.__setitem__(0, max(most_children[0], len(children(daemon.pid)))),
        0.01,
    )
    try:
        code = daemon.finish(sig=None, timeout=90)
    finally:
        if daemon.proc.poll() is None:
            daemon.finish(signal.SIGKILL)
        sampler.join(2)
    try:
        leftovers = processes_with_env(token)
        run_counts = {
            name: len((runs / name).read_text().split()) if (runs / name).exists() else 0 for name in hooks
        }
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    stderr = daemon.stderr_text()
    print(f"\nhook storm: runs {run_counts}, at most {most_children[0]} hook processes at once, "
          f"{daemon.err_bytes} bytes of log")  # fmt: skip
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert len(daemon.stdout_json()) == 100  # the audio loop went on through the whole storm
    assert most_children[0] <= 3 * 2  # the concurrency caps hold: no process exhaustion
    assert leftovers == []  # hung hooks were killed with their process group, nothing orphaned
    for name in hooks:
        skipped = len([line for line in daemon.log_lines(" skipped for loud") if f"{runs}/{name}" in line])
        assert run_counts[name] >= 1 and run_counts[name] + skipped == 100, (name, run_counts, skipped)
    assert (
        len([line for line in daemon.log_lines("timed out") if f"{runs}/hang" in line]) == run_counts["hang"]
    )
    assert len(daemon.log_lines("failed with exit status 3: boom loud")) == run_counts["crash"]
    # 8 MB of output per flood run reached neither the log nor memory: each line is capped.
    assert max(len(line) for _, line in daemon.err) < 1500
    assert daemon.err_bytes < 200 * 1024


# --------------------------------------------------------------------------- (4) bad input via the CLI


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """``cli(*argv)`` runs wakeword.cli.main in this process: (exit code, stdout, stderr)."""
    from wakeword.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    root = logging.getLogger()
    for handler in list(root.handlers):  # setup_logging's handler points at capsys's stream
        if getattr(handler, "_wakeword", False):
            root.removeHandler(handler)


def assert_one_line_error(code: int, err: str, expected_code: int, *needles: str) -> str:
    assert code == expected_code, err
    assert "Traceback" not in err
    assert "this is a bug" not in err, err  # a WakewordError, not an unexpected exception
    lines = [line for line in err.splitlines() if line.startswith("wakeword: error: ")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def bursts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bursts_clip(tmp_path_factory.mktemp("reliability") / "bursts.wav", [0.8, 2.6], 4.0)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("bogus: 1\n", "bogus: unknown key", id="unknown-top-level-key"),
        pytest.param("audio: {chunk: 20}\n", "audio.chunk: unknown key", id="unknown-nested-key"),
        pytest.param("models: {path: a.onnx}\n", "models: expected a list", id="mapping-for-a-list"),
        pytest.param("audio: {chunk_ms: fast}\n", "audio.chunk_ms", id="string-for-a-number"),
        pytest.param("audio: {buffer_s: true}\n", "audio.buffer_s", id="bool-for-a-number"),
        pytest.param("hooks: 5\n", "hooks: expected a list", id="number-for-a-list"),
        pytest.param("log_level: [INFO]\n", "log_level", id="list-for-a-string"),
        pytest.param("models:\n\t- a.onnx\n", "YAML", id="tab-indentation"),
        pytest.param("models: [a.onnx\n", "YAML", id="unclosed-bracket"),
        pytest.param("log_level: 2001-13-45\n", "YAML", id="impossible-date"),
        pytest.param("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested", id="deep-nesting"),
        pytest.param("models: [~nosuchuser_zz/a.onnx]\n", "models[0].path", id="unknown-home-dir"),
        pytest.param("\udcff\n", "UTF-8", id="not-utf8"),
    ],
)  # fmt: skip
def test_bad_config_is_one_line_exit_2(cli, bursts: Path, tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, _, err = cli("detect", "--config", str(config), str(bursts))
    assert_one_line_error(code, err, 2, str(config), needle)


def _wrong_inputs_onnx(path: Path) -> Path:
    """A valid ONNX graph with our metadata but inputs named x (not features/hidden_in)."""
    import onnx
    from onnx import TensorProto, helper

    from wakeword.metadata import METADATA_KEY, ModelMetadata

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T", 40])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: ModelMetadata(wake_word="other").to_json()})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("text", ""),
        ("wav", ""),
        ("empty", ""),
        ("directory", ""),
        ("wrong-inputs", "graph inputs"),
        ("truncated", ""),
    ],
)
def test_bad_model_is_one_line_exit_3(
    cli, bursts: Path, tmp_path: Path, loud_model_path: Path, kind: str, needle: str
) -> None:
    model = tmp_path / "model.onnx"
    if kind == "text":
        model.write_text("this is not a model\n")
    elif kind == "wav":
        model.write_bytes(bursts.read_bytes())
    elif kind == "empty":
        model.write_bytes(b"")
    elif kind == "directory":
        model.mkdir()
    elif kind == "wrong-inputs":
        _wrong_inputs_onnx(model)
    elif kind == "truncated":
        model.write_bytes(loud_model_path.read_bytes()[:-200])
    code, _, err = cli("detect", "--model", str(model), str(bursts))
    assert_one_line_error(code, err, 3, str(model), needle)


def _variant(bursts: Path, path: Path, rate: int = RATE, channels: int = 1, subtype: str = "PCM_16") -> Path:
    import soxr

    audio, _ = sf.read(bursts, dtype="float32")
    if rate != RATE:
        audio = soxr.resample(audio, RATE, rate).astype(np.float32)
    if channels > 1:
        audio = np.repeat(audio[:, None], channels, axis=1)
    sf.write(path, audio, rate, subtype=subtype)
    return path


def test_any_sample_format_rate_or_channel_count_gives_the_same_detections(
    cli, bursts: Path, tmp_path: Path, loud_model_path: Path
) -> None:
    """8-bit, 24-bit, float, 8 kHz, 96 kHz and 4-channel files through `wakeword detect`, in one run."""
    variants = {
        "u8": _variant(bursts, tmp_path / "u8.wav", subtype="PCM_U8"),
        "s24": _variant(bursts, tmp_path / "s24.wav", subtype="PCM_24"),
        "float": _variant(bursts, tmp_path / "float.wav", subtype="FLOAT"),
        "8k": _variant(bursts, tmp_path / "8k.wav", rate=8000),
        "96k": _variant(bursts, tmp_path / "96k.wav", rate=96000, subtype="PCM_24"),
        "4ch-48k": _variant(bursts, tmp_path / "4ch.wav", rate=48000, channels=4),
    }
    code, out, err = cli(
        "detect", "--json", "--model", str(loud_model_path), str(bursts), *map(str, variants.values())
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    base = [r["time"] for r in records if r["file"] == str(bursts)]
    assert len(base) == 2
    for name, path in variants.items():
        got = [r["time"] for r in records if r["file"] == str(path)]
        assert len(got) == 2, (name, got)
        assert all(abs(a - b) <= STEP_S for a, b in zip(got, base, strict=True)), (name, got, base)


def _header_only(tag: int = 1, rate: int = RATE, frames: int = 0, bits: int = 16) -> bytes:
    block = max(1, bits // 8)
    body = bytes(frames * block)
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * block, block, bits)
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param(_header_only(tag=0x55, frames=1000), "", id="mp3-tag-in-wav-header"),
        pytest.param(_header_only(bits=13, frames=1000), "", id="13-bit-header"),
        pytest.param(_header_only(rate=1, frames=16000), "sample rate", id="1-Hz-header"),
        pytest.param(_header_only(frames=0), "no audio", id="zero-length-wav"),
        pytest.param(b"", "empty", id="zero-byte-file"),
        pytest.param(b"RIFF\x24\x00\x00\x00WAVE", "not a readable audio file", id="riff-header-cut"),
        pytest.param(b"ID3\x03\x00" + bytes(500), "not a readable audio file", id="not-audio"),
    ],
)  # fmt: skip
def test_bad_audio_is_one_line_exit_4_in_detect_and_listen(
    cli, tmp_path: Path, loud_model_path: Path, content: bytes, needle: str
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    code, out, err = cli("detect", "--model", str(loud_model_path), str(bad))
    if code == 0:  # libsndfile may read an odd header as (silent) audio: a correct result, no detection
        assert needle == "" and out == "" and "Traceback" not in err
    else:
        assert_one_line_error(code, err, 4, str(bad), needle)
    code, out, err = cli("listen", "--no-realtime", "--model", str(loud_model_path), "--input", str(bad))
    if code == 0:
        assert needle == "" and out == "" and "Traceback" not in err
    else:
        assert_one_line_error(code, err, 4, str(bad), needle)


def test_truncated_wav_data_detects_what_is_there(
    cli, bursts: Path, tmp_path: Path, loud_model_path: Path
) -> None:
    """A WAV cut in the silence after the first burst: the header claims 4 s, 1.5 s are there."""
    cut = tmp_path / "cut.wav"
    data = bursts.read_bytes()
    cut.write_bytes(data[: 44 + int(1.5 * RATE) * 2 + 1])  # and half a sample at the end
    code, out, err = cli("detect", "--json", "--model", str(loud_model_path), str(cut))
    assert code == 0, err
    assert [in_bursts(json.loads(line)["time"], [0.8]) for line in out.splitlines()] == [0.8]


@pytest.mark.parametrize(
    ("raw", "detections"),
    [
        pytest.param(b"", 0, id="empty-stdin"),
        pytest.param(b"\x01", 0, id="half-a-sample"),
        pytest.param(
            (np.random.default_rng(5).standard_normal(RATE // 2) * 9000).astype("<i2").tobytes() + b"\x7f",
            1,
            id="loud-then-cut-mid-sample",
        ),
    ],
)
def test_raw_stdin_that_stops_early_is_a_clean_end(
    loud_model_path: Path, raw: bytes, detections: int
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wakeword.cli",
            "listen",
            "--json",
            "--model",
            str(loud_model_path),
            "--input",
            "-",
        ],
        cwd=REPO_ROOT,
        input=raw,
        capture_output=True,
        timeout=60,
        env=quiet_env(),
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert len(result.stdout.decode().splitlines()) == detections
    assert ("odd trailing byte" in stderr) == (len(raw) % 2 == 1)
