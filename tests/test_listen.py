"""run_listen: the live loop with real sources, real ONNX models, real signals and a real virtual mic.

Models: ``loud_model_path`` (conftest) fires on loud audio, so clips of noise bursts give
deterministic detections without a trained model; ``tiny_model_path`` is a second model
(another wake word) for reloads.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.speech import bursts_clip
from tests.virtual_mic import (
    VirtualMic,
    VirtualMicUnavailable,
    make_virtual_mic_fixture,
    reinitialise_portaudio,
    start_virtual_mic,
)
from wakeword.audio import FileSource, MicrophoneSource
from wakeword.config import AudioSettings, Config, ModelEntry
from wakeword.engine import Detector, detect_file
from wakeword.errors import ConfigError, ModelError
from wakeword.hooks import HookSettings
from wakeword.listen import ListenStats, run_listen

RATE = 16000

virtual_mic = make_virtual_mic_fixture(scope="module")


def make_config(*models: Path, hooks: tuple[HookSettings, ...] = (), input: str | None = None) -> Config:
    return Config(
        models=tuple(ModelEntry(Path(m)) for m in models), audio=AudioSettings(input=input), hooks=hooks
    )


class RecordingLifecycle:
    """Records every lifecycle call (with the wall time) for assertions."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object, float]] = []
        self.ready_event = threading.Event()

    def _add(self, name: str, value: object = None) -> None:
        self.events.append((name, value, time.monotonic()))

    def ready(self, wake_words) -> None:
        self._add("ready", list(wake_words))
        self.ready_event.set()

    def heartbeat(self, stats: ListenStats) -> None:
        self._add("heartbeat", stats)

    def stopping(self) -> None:
        self._add("stopping")

    def reloading(self) -> None:
        self._add("reloading")

    def reloaded(self, wake_words) -> None:
        self._add("reloaded", list(wake_words))

    def reload_failed(self, error) -> None:
        self._add("reload_failed", error)

    def input_lost(self, reason) -> None:
        self._add("input_lost", reason)

    def input_restored(self) -> None:
        self._add("input_restored")

    def names(self, name: str) -> list:
        return [value for n, value, _ in self.events if n == name]

    @property
    def order(self) -> list[str]:
        return [n for n, _, _ in self.events if n != "heartbeat"]


@pytest.fixture(scope="module")
def bursts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bursts_clip(tmp_path_factory.mktemp("listen") / "bursts.wav", [0.5, 1.6], 2.5)


def test_file_input_runs_to_the_end_and_matches_offline_detection(
    loud_model_path: Path, bursts: Path
) -> None:
    lifecycle = RecordingLifecycle()
    seen = []
    start = time.monotonic()
    code = run_listen(
        make_config(loud_model_path),
        lifecycle=lifecycle,
        on_detection=seen.append,
        source=FileSource(bursts, realtime=True),
    )
    wall = time.monotonic() - start
    assert code == 0
    offline = detect_file(bursts, Detector([loud_model_path]))
    assert len(offline) == 2
    assert [(d.wake_word, d.frame, d.time_s) for d in seen] == [
        (d.wake_word, d.frame, d.time_s) for d in offline
    ]
    # Lifecycle: ready once (with the wake words), heartbeats, stopping last.
    assert lifecycle.order == ["ready", "stopping"]
    assert lifecycle.names("ready") == [["loud"]]
    beats = lifecycle.names("heartbeat")
    assert len(beats) >= int(wall) - 1  # at least one a second (the loop polls 4x a second)
    final = beats[-1]
    assert final.detections == 2
    assert final.overruns == 0
    assert final.wake_words == ("loud",)
    assert final.seconds_processed == pytest.approx(2.5, abs=0.01)  # every sample, none dropped


def test_ready_comes_after_the_first_chunk_not_before(loud_model_path: Path, bursts: Path) -> None:
    lifecycle = RecordingLifecycle()
    run_listen(make_config(loud_model_path), lifecycle=lifecycle, source=FileSource(bursts, realtime=False))
    names = [name for name, _, _ in lifecycle.events]
    ready_at = names.index("ready")
    assert all(
        value.seconds_processed == 0 for name, value, _ in lifecycle.events[:ready_at] if name == "heartbeat"
    )
    after = [value for name, value, _ in lifecycle.events[ready_at:] if name == "heartbeat"]
    assert after[0].seconds_processed > 0


def _after_ready(lifecycle: RecordingLifecycle, action, delay: float = 0.3) -> threading.Thread:
    def run() -> None:
        if lifecycle.ready_event.wait(30):
            time.sleep(delay)
            action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_stop_event_stops_cleanly(loud_model_path: Path, tmp_path: Path) -> None:
    long_clip = bursts_clip(tmp_path / "long.wav", [], 60.0)
    lifecycle = RecordingLifecycle()
    stop = threading.Event()
    helper = _after_ready(lifecycle, stop.set)
    code = run_listen(
        make_config(loud_model_path), lifecycle=lifecycle, stop_event=stop, source=FileSource(long_clip)
    )
    helper.join()
    assert code == 0
    assert lifecycle.order == ["ready", "stopping"]
    assert lifecycle.names("heartbeat")[-1].seconds_processed < 30  # stopped early, not at the end


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_cleanly_and_close_hooks(
    loud_model_path: Path, tmp_path: Path, signum: int
) -> None:
    """A real signal to this process; a hook still running at shutdown is waited for, not orphaned."""
    clip = bursts_clip(tmp_path / "clip.wav", [0.3], 60.0)
    marker = tmp_path / "hook-done"
    hook = HookSettings(command=f"sleep 0.5; echo $WAKEWORD_NAME > {marker}", timeout_s=10)
    lifecycle = RecordingLifecycle()
    seen = []

    def send_after_detection() -> None:
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signum)

    helper = threading.Thread(target=send_after_detection, daemon=True)
    helper.start()
    previous = signal.getsignal(signum)
    code = run_listen(
        make_config(loud_model_path, hooks=(hook,)),
        lifecycle=lifecycle,
        on_detection=seen.append,
        source=FileSource(clip),
    )
    helper.join()
    assert code == 0
    assert len(seen) == 1
    assert lifecycle.order[-1] == "stopping"
    assert marker.read_text().strip() == "loud"  # HookRunner.close waited for the running hook
    assert signal.getsignal(signum) == previous  # handlers restored


def test_sighup_swaps_models_without_dropping_audio(
    loud_model_path: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    clip = bursts_clip(tmp_path / "clip.wav", [], 2.0)
    lifecycle = RecordingLifecycle()
    new_config = make_config(loud_model_path, tiny_model_path)
    helper = _after_ready(lifecycle, lambda: os.kill(os.getpid(), signal.SIGHUP))
    code = run_listen(
        make_config(loud_model_path),
        lifecycle=lifecycle,
        reload_config=lambda: new_config,
        source=FileSource(clip, realtime=True),
    )
    helper.join()
    assert code == 0
    assert lifecycle.order == ["ready", "reloading", "reloaded", "stopping"]
    assert sorted(lifecycle.names("reloaded")[0]) == ["espresso", "loud"]
    final = lifecycle.names("heartbeat")[-1]
    assert final.wake_words == ("loud", "espresso")
    assert final.seconds_processed == pytest.approx(2.0, abs=0.01)  # the source kept running
    assert final.overruns == 0


@pytest.mark.parametrize("changed", [False, True])
def test_a_reload_keeps_the_running_detector_unless_its_models_or_settings_change(
    loud_model_path: Path, tmp_path: Path, changed: bool
) -> None:
    """A real SIGHUP 0.3 s in; the burst comes at 2.0 s. With the same models and settings (say only
    a hook changed) the detector and its state carry on, so its frames still count from the
    stream's start and a word spoken across the reload is heard whole; a new threshold starts a
    new detector at the reload (noted in the --dump-audio restarts, whose replay equals live)."""
    from wakeword.dump import AudioDump, read_restarts

    clip = bursts_clip(tmp_path / "clip.wav", [2.0], 3.0)
    dump = tmp_path / "heard.wav"
    lifecycle = RecordingLifecycle()
    seen = []
    before = make_config(loud_model_path)
    after = Config(models=(ModelEntry(loud_model_path, threshold=0.6 if changed else None),))
    helper = _after_ready(lifecycle, lambda: os.kill(os.getpid(), signal.SIGHUP))
    code = run_listen(
        before,
        lifecycle=lifecycle,
        on_detection=seen.append,
        reload_config=lambda: after,
        source=FileSource(clip, realtime=True),
        taps=[AudioDump(dump)],
    )
    helper.join()
    assert code == 0 and lifecycle.order == ["ready", "reloading", "reloaded", "stopping"]
    offline = detect_file(clip, Detector([loud_model_path]))
    assert len(seen) == 1 and len(offline) == 1
    assert seen[0].time_s == pytest.approx(offline[0].time_s, abs=0.011)
    restarts = read_restarts(dump)
    if changed:
        assert len(restarts) == 1 and restarts[0].unheard == 0
        assert seen[0].frame < offline[0].frame  # counted from the reload
        replay = detect_file(dump, Detector([loud_model_path]))
        assert [(d.frame, d.time_s) for d in replay] == [(d.frame, d.time_s) for d in seen]
    else:
        assert restarts == []
        assert (seen[0].frame, seen[0].time_s) == (offline[0].frame, offline[0].time_s)


def test_failed_reload_keeps_the_old_pipeline(
    loud_model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a rejected SIGHUP reload, the old detector still detects the later burst."""
    error = ConfigError("config.yaml: models[0].threshold: expected a number between 0 and 1, got 'high'")
    clip = bursts_clip(tmp_path / "clip.wav", [1.3], 2.0)
    lifecycle = RecordingLifecycle()
    seen = []

    def bad_loader() -> Config:
        raise error

    helper = _after_ready(lifecycle, lambda: os.kill(os.getpid(), signal.SIGHUP), delay=0.2)
    with caplog.at_level(logging.ERROR, logger="wakeword.listen"):
        code = run_listen(
            make_config(loud_model_path),
            lifecycle=lifecycle,
            on_detection=seen.append,
            reload_config=bad_loader,
            source=FileSource(clip, realtime=True),
        )
    helper.join()
    assert code == 0
    assert lifecycle.order == ["ready", "reloading", "reload_failed", "stopping"]
    assert [d.wake_word for d in seen] == ["loud"]
    assert seen[0].time_s > 1.3  # the burst came after the failed reload
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(error) in errors[0]


def test_reload_of_a_real_bad_model_file(loud_model_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx at all")
    clip = bursts_clip(tmp_path / "clip.wav", [], 2.0)
    lifecycle = RecordingLifecycle()
    helper = _after_ready(lifecycle, lambda: os.kill(os.getpid(), signal.SIGHUP), delay=0.1)
    code = run_listen(
        make_config(loud_model_path),
        lifecycle=lifecycle,
        reload_config=lambda: make_config(broken),
        source=FileSource(clip),
    )
    helper.join()
    assert code == 0
    assert isinstance(lifecycle.names("reload_failed")[0], ModelError)
    assert lifecycle.names("heartbeat")[-1].wake_words == ("loud",)


def test_overrun_gap_keeps_detection_times_on_the_true_stream_clock(
    loud_model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sink that stalls the loop for 1.5 s with a 0.5 s ring buffer: audio is dropped, counted,
    logged, and the next burst is still reported at its real position in the stream."""
    starts = [0.3, 2.6]
    clip = bursts_clip(tmp_path / "clip.wav", starts, 3.5)
    source = FileSource(clip, realtime=True, buffer_s=0.5)
    seen = []

    def stalling_sink(detection) -> None:
        seen.append(detection)
        if len(seen) == 1:
            time.sleep(1.5)

    lifecycle = RecordingLifecycle()
    with caplog.at_level(logging.WARNING, logger="wakeword.audio"):
        code = run_listen(
            make_config(loud_model_path), lifecycle=lifecycle, on_detection=stalling_sink, source=source
        )
    assert code == 0
    final = lifecycle.names("heartbeat")[-1]
    dropped_s = source.dropped_samples / RATE
    assert final.overruns >= 1 and dropped_s > 0.5
    assert final.seconds_processed + dropped_s == pytest.approx(3.5, abs=0.01)  # nothing lost uncounted
    assert any("overrun" in r.getMessage() for r in caplog.records)
    assert len(seen) == 2
    assert starts[1] < seen[1].time_s <= starts[1] + 0.4 + 0.08  # inside the burst (+ one model step)


def test_hooks_from_config_run_for_each_detection(loud_model_path: Path, tmp_path: Path) -> None:
    clip = bursts_clip(tmp_path / "clip.wav", [0.3, 1.5], 2.5)
    out = tmp_path / "events"
    hook = HookSettings(command=f'echo "$WAKEWORD_NAME $WAKEWORD_SCORE" >> {out}')
    code = run_listen(make_config(loud_model_path, hooks=(hook,)), source=FileSource(clip, realtime=False))
    assert code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith("loud ") for line in lines)


def test_start_up_errors_raise_before_listening(tmp_path: Path, loud_model_path: Path) -> None:
    with pytest.raises(ModelError):
        run_listen(
            make_config(tmp_path / "missing.onnx"), source=FileSource(bursts_clip(tmp_path / "a.wav", [], 1))
        )
    from wakeword.errors import AudioError

    with pytest.raises(AudioError):
        run_listen(make_config(loud_model_path, input=str(tmp_path / "missing.wav")))


# --------------------------------------------------------------------------- live microphone


def test_live_microphone_detections(virtual_mic: VirtualMic, loud_model_path: Path, tmp_path: Path) -> None:
    """paplay into the null sink -> PortAudio -> ring buffer -> Detector -> callback."""
    clip = bursts_clip(tmp_path / "clip.wav", [0.3, 1.6], 2.5)
    lifecycle = RecordingLifecycle()
    seen = []
    stop = threading.Event()

    def play_then_stop() -> None:
        virtual_mic.play(clip)
        time.sleep(1.0)  # what is still in flight
        stop.set()

    helper = _after_ready(lifecycle, play_then_stop, delay=0.2)
    code = run_listen(
        make_config(loud_model_path),
        lifecycle=lifecycle,
        stop_event=stop,
        on_detection=seen.append,
        source=MicrophoneSource("pulse"),
    )
    helper.join()
    assert code == 0
    assert [d.wake_word for d in seen] == ["loud", "loud"]
    assert seen[1].time_s - seen[0].time_s == pytest.approx(1.3, abs=0.15)


def test_microphone_lost_is_logged_once_retried_and_resumes(
    loud_model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kill the sound server under a running stream, start it again: one warning, one info, and
    detections resume on the same run_listen (no exit, no traceback)."""
    try:
        mic = start_virtual_mic(sink="vmic-lost")
    except VirtualMicUnavailable as exc:
        pytest.skip(str(exc))
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    os.environ.update(XDG_RUNTIME_DIR=mic.env["XDG_RUNTIME_DIR"], PULSE_SERVER=mic.env["PULSE_SERVER"])
    reinitialise_portaudio()
    clip = bursts_clip(tmp_path / "clip.wav", [0.2], 1.0)
    lifecycle = RecordingLifecycle()
    seen = []
    stop = threading.Event()
    source = MicrophoneSource("pulse")

    def wait_for(predicate, limit: float = 30.0) -> bool:
        deadline = time.monotonic() + limit
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.05)
        return predicate()

    def scenario() -> None:
        try:
            mic.kill()
            assert wait_for(lambda: "input_lost" in lifecycle.order)
            time.sleep(1.5)  # a few retry rounds while the server is away
            mic.restart()
            assert wait_for(lambda: "input_restored" in lifecycle.order)
            assert wait_for(lambda: source.first_callback.is_set() and source.reconnects == 1)
            time.sleep(0.5)
            mic.play(clip)
            assert wait_for(lambda: len(seen) == 1, 10.0)
        finally:
            stop.set()

    helper = _after_ready(lifecycle, scenario, delay=0.3)
    guard = threading.Timer(90.0, stop.set)  # never hang the suite
    guard.start()
    try:
        with caplog.at_level(logging.INFO, logger="wakeword"):
            code = run_listen(
                make_config(loud_model_path),
                lifecycle=lifecycle,
                stop_event=stop,
                on_detection=seen.append,
                source=source,
            )
        helper.join()
    finally:
        guard.cancel()
        mic.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reinitialise_portaudio()
    assert code == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "audio input lost" in m]) == 1, messages
    assert len([m for m in messages if "capturing again" in m]) == 1, messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert lifecycle.order == ["ready", "input_lost", "input_restored", "stopping"]
    assert [d.wake_word for d in seen] == ["loud"]


def test_reconnect_backoff_doubles_and_is_capped() -> None:
    from wakeword.audio import RECONNECT_MAX_S, reconnect_delays

    delays = [d for d, _ in zip(reconnect_delays(), range(10), strict=False)]
    assert delays[1] == pytest.approx(2 * delays[0]) and delays[0] > 0
    assert delays == sorted(delays)
    assert delays[-1] == max(delays) == RECONNECT_MAX_S
