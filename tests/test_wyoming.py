"""The Wyoming server, end to end: a real server on a loopback port, the wyoming package's own client.

Audio goes in as the protocol's audio-chunk events at 44.1 kHz stereo (so the server's
conversion to 16 kHz mono is exercised), results come back as the protocol's events.
Most tests use the ``loud`` fixture model (fires on loud noise, deterministic); the
``espresso`` tests need the trained model and skip until it exists.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import soxr

pytest.importorskip("wyoming", reason="the integrations extra (wyoming) is not installed")

from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient, AsyncUnixClient  # noqa: E402
from wyoming.event import Event  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.wake import Detect, Detection, NotDetected  # noqa: E402

from tests.speech import espeak_missing, keyword_clip, other_speech_clip  # noqa: E402
from wakeword.model import WakeWordModel  # noqa: E402
from wakeword.wyoming import WakeService, start_server  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIENT_RATE = 44100
CLIENT_CHANNELS = 2
CLIENT_WIDTH = 2
CHUNK_S = 0.02  # 20 ms per audio-chunk, like a satellite
GUARD_S = 60.0  # only to turn a hang into a failure; not a timing assertion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stereo_pcm(mono: np.ndarray) -> bytes:
    """float mono in [-1, 1] -> interleaved 16-bit stereo bytes (same signal on both channels)."""
    pcm = np.clip(np.round(mono * 32767.0), -32768, 32767).astype("<i2")
    return np.repeat(pcm, CLIENT_CHANNELS).tobytes()


def burst_clip(rng: np.random.Generator, amplitude: float = 0.3) -> np.ndarray:
    """1 s quiet, 0.6 s loud noise, 1 s quiet, at the client rate (mono)."""
    loud = rng.normal(0.0, amplitude, int(0.6 * CLIENT_RATE))
    return np.concatenate([quiet_clip(rng, 1.0), loud, quiet_clip(rng, 1.0)])


def quiet_clip(rng: np.random.Generator, seconds: float = 2.5) -> np.ndarray:
    return rng.normal(0.0, 0.0005, int(seconds * CLIENT_RATE))


async def stream(client, audio: bytes, names: list[str] | None = None) -> None:
    """detect, audio-start, 20 ms audio-chunks, audio-stop: what Home Assistant sends."""
    await client.write_event(Detect(names=names).event())
    await client.write_event(AudioStart(CLIENT_RATE, CLIENT_WIDTH, CLIENT_CHANNELS).event())
    step = int(CHUNK_S * CLIENT_RATE) * CLIENT_WIDTH * CLIENT_CHANNELS
    for start in range(0, len(audio), step):
        chunk = AudioChunk(CLIENT_RATE, CLIENT_WIDTH, CLIENT_CHANNELS, audio[start : start + step])
        await client.write_event(chunk.event())
    await client.write_event(AudioStop().event())


async def replies(client) -> list[Event]:
    """Everything the server sent for the stream: a describe sent last marks the end (events are ordered)."""
    await client.write_event(Describe().event())
    events: list[Event] = []
    while True:
        event = await asyncio.wait_for(client.read_event(), GUARD_S)
        assert event is not None, f"server closed the connection; got {[e.type for e in events]}"
        if Info.is_type(event.type):
            return events
        events.append(event)


async def detect_over_wyoming(uri_client, audio: bytes, names: list[str] | None = None) -> list[Event]:
    async with uri_client() as client:
        await stream(client, audio, names)
        return await replies(client)


def run_with_server(
    service: WakeService, scenario: Callable[[Callable[[], AsyncTcpClient]], Awaitable[object]]
) -> object:
    """Start a server on a free loopback port, run ``scenario(make_client)``, stop the server."""
    port = free_port()

    async def main() -> object:
        server = await start_server(f"tcp://127.0.0.1:{port}", service)
        try:
            return await asyncio.wait_for(scenario(lambda: AsyncTcpClient("127.0.0.1", port)), GUARD_S)
        finally:
            await server.stop()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def loud_service(loud_model_path) -> WakeService:
    return WakeService([WakeWordModel.load(loud_model_path)])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def detections(events: list[Event]) -> list[Detection]:
    return [Detection.from_event(e) for e in events if Detection.is_type(e.type)]


def test_describe_lists_one_wake_model_per_loaded_model(loud_model_path, tiny_model_path):
    service = WakeService([WakeWordModel.load(loud_model_path), WakeWordModel.load(tiny_model_path)])

    async def scenario(make_client):
        async with make_client() as client:
            await client.write_event(Describe().event())
            return await client.read_event()

    event = run_with_server(service, scenario)
    assert event is not None and Info.is_type(event.type)
    info = Info.from_event(event)
    assert len(info.wake) == 1
    program = info.wake[0]
    assert program.installed
    models = {m.name: m for m in program.models}
    assert set(models) == {"loud", "espresso"}
    assert models["espresso"].phrase == "espresso"
    assert models["espresso"].languages == ["en"]
    assert models["espresso"].description == "random weights"  # from the model's own metadata
    assert all(m.version and m.installed for m in models.values())


def test_loud_burst_at_44k_stereo_gives_exactly_one_detection(loud_service, rng):
    audio = stereo_pcm(burst_clip(rng))
    events = run_with_server(loud_service, lambda make: detect_over_wyoming(make, audio))

    found = detections(events)
    assert len(found) == 1, [e.type for e in events]
    assert found[0].name == "loud"
    # ms from stream start: the burst spans 1.0-1.6 s; patience and smoothing put it inside.
    assert 1000 <= found[0].timestamp <= 1700
    assert not any(NotDetected.is_type(e.type) for e in events)


def test_quiet_audio_gives_not_detected_at_audio_stop(loud_service, rng):
    audio = stereo_pcm(quiet_clip(rng))
    events = run_with_server(loud_service, lambda make: detect_over_wyoming(make, audio))

    assert [e.type for e in events] == ["not-detected"]


def test_two_streams_on_one_connection_start_fresh(loud_service, rng):
    """audio-start resets state: the second stream's timestamp counts from its own start."""
    loud, quiet = stereo_pcm(burst_clip(rng)), stereo_pcm(quiet_clip(rng, 1.0))

    async def scenario(make_client):
        async with make_client() as client:
            await stream(client, loud)
            first = await replies(client)
            await stream(client, quiet + loud)
            second = await replies(client)
            await stream(client, quiet)
            third = await replies(client)
            return first, second, third

    first, second, third = run_with_server(loud_service, scenario)
    (a,), (b,) = detections(first), detections(second)
    assert 900 <= b.timestamp - a.timestamp <= 1100  # one extra second of quiet in front
    assert [e.type for e in third] == ["not-detected"]


def test_detect_with_other_model_names_ignores_models_not_asked_for(loud_service, rng):
    audio = stereo_pcm(burst_clip(rng))

    async def scenario(make_client):
        async with make_client() as client:
            await stream(client, audio, names=["hey_nobody"])
            other = await replies(client)
            await stream(client, audio, names=["loud"])
            asked = await replies(client)
            return other, asked

    other, asked = run_with_server(loud_service, scenario)
    assert [e.type for e in other] == ["not-detected"]
    assert [d.name for d in detections(asked)] == ["loud"]


def test_two_clients_at_once_keep_separate_state(loud_service, rng):
    loud, quiet = stereo_pcm(burst_clip(rng)), stereo_pcm(quiet_clip(rng))

    async def scenario(make_client):
        return await asyncio.gather(
            detect_over_wyoming(make_client, loud),
            detect_over_wyoming(make_client, quiet),
            detect_over_wyoming(make_client, loud),
        )

    first, second, third = run_with_server(loud_service, scenario)
    assert [d.name for d in detections(first)] == ["loud"]
    assert [e.type for e in second] == ["not-detected"]
    assert [d.timestamp for d in detections(third)] == [d.timestamp for d in detections(first)]


def test_client_that_disconnects_mid_stream_frees_its_state(loud_service, rng):
    audio = stereo_pcm(burst_clip(rng))
    lead_in = int(0.5 * CLIENT_RATE) * CLIENT_WIDTH * CLIENT_CHANNELS  # quiet part: nothing to answer

    async def scenario(make_client):
        async with make_client() as client:
            await client.write_event(AudioStart(CLIENT_RATE, CLIENT_WIDTH, CLIENT_CHANNELS).event())
            await client.write_event(
                AudioChunk(CLIENT_RATE, CLIENT_WIDTH, CLIENT_CHANNELS, audio[:lead_in]).event()
            )
            # Describe round trip: the chunk has been processed, so the stream's Detector exists.
            await client.write_event(Describe().event())
            assert Info.is_type((await client.read_event()).type)
            during = len(loud_service.detectors)
        # Gone without audio-stop. The server notices at its next read; wait for that.
        while True:
            gc.collect()
            if len(loud_service.detectors) == 0:
                break
            await asyncio.sleep(0.05)
        # ...and it still serves the next client.
        after = await detect_over_wyoming(make_client, audio)
        return during, after

    during, after = run_with_server(loud_service, scenario)
    assert during == 1
    assert [d.name for d in detections(after)] == ["loud"]


def test_malformed_chunk_gets_an_error_event_and_the_connection_survives(loud_service, rng):
    async def scenario(make_client):
        async with make_client() as client:
            await client.write_event(AudioStart(CLIENT_RATE, CLIENT_WIDTH, CLIENT_CHANNELS).event())
            await client.write_event(AudioChunk(CLIENT_RATE, 5, 1, b"\x00" * 10).event())  # width 5
            await client.write_event(AudioStop().event())
            return await replies(client)

    events = run_with_server(loud_service, scenario)
    assert [e.type for e in events] == ["error", "not-detected"]


# -- the trained model: synthesised speech ------------------------------------------------


def client_audio(clip: np.ndarray) -> bytes:
    """A 16 kHz mono clip as the client sends it: 44.1 kHz stereo 16-bit."""
    return stereo_pcm(soxr.resample(clip, 16000, CLIENT_RATE))


def test_spoken_espresso_gives_exactly_one_detection(shipped_model_path, tmp_path):
    if reason := espeak_missing():
        pytest.skip(reason)
    service = WakeService([WakeWordModel.load(shipped_model_path)])
    clip = keyword_clip(tmp_path / "espresso.wav")

    events = run_with_server(service, lambda make: detect_over_wyoming(make, client_audio(clip.samples)))
    found = detections(events)
    assert [d.name for d in found] == ["espresso"]
    assert clip.speech_start_s * 1000 <= found[0].timestamp <= clip.speech_end_s * 1000 + 1000


def test_speech_without_the_wake_word_gives_not_detected(shipped_model_path, tmp_path):
    if reason := espeak_missing():
        pytest.skip(reason)
    service = WakeService([WakeWordModel.load(shipped_model_path)])
    clip = other_speech_clip(tmp_path / "other.wav")

    events = run_with_server(service, lambda make: detect_over_wyoming(make, client_audio(clip.samples)))
    assert [e.type for e in events] == ["not-detected"]


# -- the command: `wakeword wyoming` as a subprocess ---------------------------------------


def wakeword_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wakeword.cli", *args]


async def connect_when_up(make_client, proc: subprocess.Popen) -> object:
    """Connect as soon as the subprocess listens (it loads models first)."""
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read()}")
        client = make_client()
        try:
            await client.connect()
            return client
        except OSError:
            await asyncio.sleep(0.1)


def test_wyoming_command_serves_unix_socket_and_stops_on_sigterm(loud_model_path, tmp_path, rng):
    sock = tmp_path / "wakeword.sock"
    proc = subprocess.Popen(
        wakeword_command("wyoming", "--uri", f"unix://{sock}", "--model", str(loud_model_path)),
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},  # no user config
    )
    audio = stereo_pcm(burst_clip(rng))

    async def scenario():
        client = await connect_when_up(lambda: AsyncUnixClient(str(sock)), proc)
        try:
            await stream(client, audio)
            return await replies(client)
        finally:
            await client.disconnect()

    try:
        events = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [d.name for d in detections(events)] == ["loud"]
    assert proc.returncode == 0, proc.stderr.read()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--uri", "http://127.0.0.1:1"], "--uri"),
        (["--threshold", "1.5"], "--threshold"),
        (["--model", "/nonexistent/model.onnx"], "/nonexistent/model.onnx"),
    ],
)
def test_wyoming_command_bad_input_is_one_line_and_nonzero(args, expected, loud_model_path, tmp_path):
    if "--model" not in args:
        args = [*args, "--model", str(loud_model_path)]
    result = subprocess.run(
        wakeword_command("wyoming", *args),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
        timeout=GUARD_S,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_without_the_wyoming_package_the_cli_loads_and_the_command_says_what_to_install(loud_model_path):
    # Simulates an install without the `integrations` extra: the package cannot be imported.
    code = (
        "import sys; sys.modules['wyoming'] = None; "
        "from wakeword.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "wyoming", "--model", str(loud_model_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=GUARD_S,
    )
    assert result.returncode != 0
    assert "pip install 'wakeword[integrations]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- as a systemd service: the notify protocol over a real NOTIFY_SOCKET ------------------


def notify_env(tmp_path: Path, notify_path: Path) -> dict[str, str]:
    """What systemd gives a Type=notify service, plus a WatchdogSec= the unit does not have."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "INVOCATION_ID", "JOURNAL_STREAM")
    }
    env.update(
        XDG_CONFIG_HOME=str(tmp_path),  # no user config
        NOTIFY_SOCKET=str(notify_path),
        WATCHDOG_USEC="2000000",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_wyoming_command_is_ready_only_when_serving_and_stops_cleanly(stop_signal, loud_model_path, tmp_path):
    """READY=1 (STATUS= naming the model and the URI) comes when the port already answers: one
    connection attempt right then, no retries, gets `info` for `describe`. The stop signal, with that
    client still connected, gives STOPPING=1, a closed connection and exit code 0."""
    pytest.importorskip("systemd.daemon", reason="systemd-python (the systemd extra) is not installed")
    from tests.notify import NotifySocket

    notify = NotifySocket()
    port = free_port()
    uri = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        wakeword_command("wyoming", "--uri", uri, "--model", str(loud_model_path)),
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=notify_env(tmp_path, notify.path),
    )

    async def describe_then_stop() -> tuple[Event | None, Event | None]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            answer = await client.read_event()
            proc.send_signal(stop_signal)
            return answer, await client.read_event()  # None: the server closed the connection

    try:
        ready = notify.wait_for("READY", "1", timeout=GUARD_S)
        assert ready is not None, f"no READY=1 (exit code {proc.poll()})"
        answer, after_stop = asyncio.run(asyncio.wait_for(describe_then_stop(), GUARD_S))
        code = proc.wait(timeout=GUARD_S)
        stopping = notify.wait_for("STOPPING", "1", timeout=5)
        messages = [m for _, m in notify.snapshot()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    stderr = proc.stderr.read()

    assert answer is not None and Info.is_type(answer.type)
    assert [m.name for m in Info.from_event(answer).wake[0].models] == ["loud"]
    status = ready[1]["STATUS"]
    assert "loud" in status and uri in status
    assert after_stop is None
    assert stopping is not None and stopping[0] >= ready[0]
    assert code == 0, stderr
    assert not [m for m in messages if "WATCHDOG" in m]  # it has nothing to prove: no pings at all
    assert "WatchdogSec=" in stderr  # ...and says that a unit expecting them is wrong


def test_wyoming_command_that_cannot_listen_never_reports_ready(loud_model_path, tmp_path):
    """The port is taken: no READY=1 (it is sent after binding, not before), a one-line error, exit 1."""
    pytest.importorskip("systemd.daemon", reason="systemd-python (the systemd extra) is not installed")
    from tests.notify import NotifySocket

    notify = NotifySocket()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        uri = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        try:
            result = subprocess.run(
                wakeword_command("wyoming", "--uri", uri, "--model", str(loud_model_path)),
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
                env=notify_env(tmp_path, notify.path),
                timeout=GUARD_S,
            )
            time.sleep(0.3)  # anything it sent has been read by then (local datagrams, 0.1 s polls)
            messages = [m for _, m in notify.snapshot()]
        finally:
            notify.close()
    assert result.returncode == 1
    assert f"cannot listen on {uri}" in result.stderr.strip().splitlines()[-1]
    assert not [m for m in messages if "READY" in m], messages
