"""The live loop: audio source -> Detector -> detection sinks (stdout callback, hooks, MQTT).

One thread does all the processing (the caller's); the audio arrives through the
source's ring buffer from the capture thread. Signals only set flags that this
loop checks, so nothing heavy ever runs inside a signal handler:

* SIGTERM / SIGINT: stop cleanly (stop the source, close hooks with their timeouts), exit 0.
* the microphone lost (unplugged, sound server gone): the source logs it once and retries
  with backoff while the loop keeps running; the lifecycle hears ``input_lost``/``input_restored``.
* SIGHUP: reload the config and models *while the source keeps running*; the new
  Detector and sinks are built on the side and swapped in, and a bad new config
  is logged in one line while the old pipeline carries on.

A :class:`Lifecycle` (systemd in wakeword.service) is told when the daemon is
ready, gets a heartbeat at least once a second, and hears when it stops.

:class:`StreamTap` objects (saved clips, the live meter) see every processed chunk with its
detections and per-frame smoothed scores, on this thread: they must only copy and count.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from wakeword.audio import AudioSource, open_source
from wakeword.engine import Detector
from wakeword.errors import AudioError, WakewordError

if TYPE_CHECKING:
    from wakeword.config import Config
    from wakeword.detector import Detection

log = logging.getLogger(__name__)

#: The loop wakes at least this often, even without audio, so heartbeats keep coming.
POLL_S = 0.25
HEARTBEAT_S = 0.5


@dataclass(frozen=True)
class ListenStats:
    """What the loop reports with each heartbeat."""

    wake_words: tuple[str, ...]
    detections: int
    overruns: int
    seconds_processed: float


class Lifecycle(Protocol):
    """Told about the loop's life. Optional extras, called when present: ``reloading()``,
    ``reloaded(wake_words)``, ``reload_failed(error)``, ``input_lost(reason)``, ``input_restored()``."""

    def ready(self, wake_words: Sequence[str]) -> None: ...

    def heartbeat(self, stats: ListenStats) -> None: ...

    def stopping(self) -> None: ...


class NullLifecycle:
    """A lifecycle that does nothing (a terminal, a test)."""

    def ready(self, wake_words: Sequence[str]) -> None:
        pass

    def heartbeat(self, stats: ListenStats) -> None:
        pass

    def stopping(self) -> None:
        pass


class StreamTap(Protocol):
    """Sees the stream as the loop processes it (``wakeword.clips.ClipRecorder``, ``wakeword.meter.Meter``).

    ``attach`` is called with each detector the loop starts (at start-up, after dropped
    audio, after a reload) and the stream time of its frame 0; ``step`` after each chunk
    with the chunk's absolute sample position, its detections (stream-clock times) and,
    per wake word, (first frame, smoothed score of each frame) when ``wants_scores``;
    ``finish`` when the input ends; ``close`` once, at exit.
    """

    wants_scores: bool

    def attach(self, detector: Detector, offset_s: float) -> None: ...

    def step(
        self,
        chunk: np.ndarray,
        position: int,
        detections: Sequence[Detection],
        scores: dict[str, tuple[int, list[float]]],
    ) -> None: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


DetectionCallback = Callable[["Detection"], None]
ConfigLoader = Callable[[], "Config"]


@dataclass
class Pipeline:
    """What a config turns into: the detector and the sinks that detections go to."""

    detector: Detector
    sinks: list[tuple[str, Any]] = field(default_factory=list)  # (name, object with handle()/fire())

    def emit(self, detection: Detection) -> None:
        for name, sink in self.sinks:
            try:
                (sink.fire if hasattr(sink, "fire") else sink.handle)(detection)
            except Exception as exc:  # one broken sink must not stop the others or the loop
                log.error("%s failed for a detection: %s", name, exc)

    def hand_over(self, successor: Pipeline) -> None:
        """Give the successor (a reload) what this pipeline's sinks still hold: MQTT detections
        queued during a broker outage would otherwise die with the old publisher."""
        for name, sink in self.sinks:
            take = getattr(sink, "take_pending", None)
            if not callable(take):
                continue
            heir = next((s for n, s in successor.sinks if n == name and hasattr(s, "adopt")), None)
            if heir is None:
                continue
            try:
                heir.adopt(take())
            except Exception as exc:
                log.error("handing over %s's queue failed: %s", name, exc)

    def close(self) -> None:
        """Close every sink with its own timeouts (hooks wait for running commands, then kill)."""
        for name, sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                log.error("closing %s failed: %s", name, exc)


def build_pipeline(config: Config) -> Pipeline:
    """Load models and create sinks for a config (raises ConfigError/ModelError on bad input)."""
    detector = Detector.from_config(config)
    sinks: list[tuple[str, Any]] = []
    try:
        hooks = _build_hooks(config)
        if hooks is not None:
            sinks.append(("hook", hooks))
        if getattr(config, "mqtt", None) is not None:
            from wakeword.mqtt import MqttPublisher  # optional integration, imported only when used

            sinks.append(("mqtt", MqttPublisher(config.mqtt)))
    except BaseException:
        Pipeline(detector, sinks).close()
        raise
    return Pipeline(detector, sinks)


def _build_hooks(config: Config) -> Any | None:
    hook_settings = list(getattr(config, "hooks", None) or [])
    if not hook_settings:
        return None
    from wakeword.hooks import HookRunner

    return HookRunner(hook_settings)


@contextlib.contextmanager
def _signals(stop: threading.Event, reload: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop``, SIGHUP sets ``reload``; only possible in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_stop(signum: int, frame: object) -> None:
        stop.set()

    def on_hup(signum: int, frame: object) -> None:
        reload.set()

    wanted = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_hup}
    previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def source_for(config: Config, *, realtime: bool = True) -> AudioSource:
    """The audio source a config's ``audio`` section asks for (``realtime`` paces file input)."""
    audio = config.audio
    return open_source(
        audio.input, audio.device, realtime=realtime, block_s=audio.block_s, buffer_s=audio.buffer_s
    )


def _call_optional(lifecycle: object, name: str, *args: object) -> None:
    method = getattr(lifecycle, name, None)
    if callable(method):
        try:
            method(*args)
        except Exception as exc:
            log.error("lifecycle %s failed: %s", name, exc)


class _Loop:
    """State of one run of the live loop."""

    def __init__(
        self,
        config: Config,
        pipeline: Pipeline,
        source: AudioSource,
        lifecycle: Lifecycle,
        on_detection: DetectionCallback | None,
        reload_config: ConfigLoader,
        taps: Sequence[StreamTap] = (),
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.source = source
        self.lifecycle = lifecycle
        self.on_detection = on_detection
        self.reload_config = reload_config
        self.detections = 0
        self.samples = 0  # processed
        self.dropped = 0  # lost to overruns (gaps in the stream)
        self.offset_s = 0.0  # stream time at which the current detector started
        self.ready = False
        self.input_lost = False
        self._last_heartbeat = -1e9
        self.taps = list(taps)
        self._scores: dict[str, tuple[int, list[float]]] = {}
        self._attach()

    def stats(self) -> ListenStats:
        return ListenStats(
            wake_words=tuple(self.pipeline.detector.wake_words),
            detections=self.detections,
            overruns=self.source.overruns,
            seconds_processed=self.samples / self.source.sample_rate,
        )

    def heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_heartbeat >= HEARTBEAT_S:
            self._last_heartbeat = now
            self.lifecycle.heartbeat(self.stats())

    def _tap(self, method: str, *args: object) -> None:
        """Call a method of every tap; a broken tap is logged and never stops the loop."""
        for tap in self.taps:
            try:
                getattr(tap, method)(*args)
            except Exception as exc:
                log.error("%s.%s failed: %s", type(tap).__name__, method, exc)

    def _attach(self) -> None:
        """Tell the taps about the current detector and have it hand over per-frame scores if asked."""
        if not self.taps:
            return
        self._tap("attach", self.pipeline.detector, self.offset_s)
        self._scores = {}
        if any(getattr(tap, "wants_scores", False) for tap in self.taps):
            for word, debouncer in self.pipeline.detector.debouncers.items():
                debouncer.score_sink = self._score_sink(word)

    def _score_sink(self, word: str) -> Callable[[int, list[float]], None]:
        def sink(first_frame: int, scores: list[float]) -> None:
            held = self._scores.get(word)
            if held is None:
                self._scores[word] = (first_frame, scores)
            else:
                held[1].extend(scores)

        return sink

    def _shift(self, detections: list[Detection]) -> list[Detection]:
        """Detector times -> stream times (the detector restarted at ``offset_s``)."""
        if not self.offset_s:
            return detections
        return [replace(d, time_s=d.time_s + self.offset_s) for d in detections]

    def handle(self, detections: list[Detection]) -> None:
        """Report detections already on the stream clock."""
        for detection in detections:
            self.detections += 1
            log.info(
                "detected %s (score %.3f) at %.2f s", detection.wake_word, detection.score, detection.time_s
            )
            if self.on_detection is not None:
                self.on_detection(detection)
            self.pipeline.emit(detection)

    @property
    def read_samples(self) -> int:
        """Read audio in model steps: the models run once per step anyway, and fewer wake-ups
        halve the live loop's CPU (at most one step of extra latency)."""
        return min(m.metadata.frames_per_step * m.features.hop_samples for m in self.pipeline.detector.models)

    @property
    def position_s(self) -> float:
        """Stream time of the next sample: processed plus dropped audio."""
        return (self.samples + self.dropped) / self.source.sample_rate

    def gap(self, samples: int) -> None:
        """Audio was dropped before the next chunk: restart the detector there, on the true clock.

        Features and hidden state across a hole would describe audio that never happened.
        """
        self.dropped += samples
        self.pipeline.detector.reset()
        self.offset_s = self.position_s
        self._attach()

    def process(self, chunk) -> None:
        position = self.samples + self.dropped
        detections = self._shift(self.pipeline.detector.process(chunk))
        if self.taps:
            scores, self._scores = self._scores, {}
            self._tap("step", chunk, position, detections, scores)
        self.handle(detections)
        self.samples += chunk.size
        if not self.ready:
            self.ready = True
            wake_words = self.pipeline.detector.wake_words
            log.info("listening for %s on %s", ", ".join(wake_words), self.source.description)
            self.lifecycle.ready(wake_words)

    def finish(self) -> None:
        """The input ended: run what the detector still buffers, then let the taps finish."""
        detections = self._shift(self.pipeline.detector.flush())
        if self.taps:
            scores, self._scores = self._scores, {}
            self._tap("step", np.zeros(0, dtype=np.int16), self.samples + self.dropped, detections, scores)
            self._tap("finish")
        self.handle(detections)

    def check_input(self) -> None:
        """Tell the lifecycle when the microphone is lost (and being retried) and when it is back."""
        lost = bool(getattr(self.source, "lost", False))
        if lost == self.input_lost:
            return
        self.input_lost = lost
        if lost:
            _call_optional(self.lifecycle, "input_lost", getattr(self.source, "lost_reason", None) or "")
        else:
            _call_optional(self.lifecycle, "input_restored")

    def reload(self) -> None:
        """Build the new pipeline beside the running one and swap; keep the old one on failure."""
        log.info("SIGHUP: reloading configuration")
        _call_optional(self.lifecycle, "reloading")
        try:
            config = self.reload_config()
            pipeline = build_pipeline(config)
        except WakewordError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            _call_optional(self.lifecycle, "reload_failed", exc)
            return
        if config.audio != self.config.audio:
            log.warning("audio settings changed; they take effect at the next restart")
        old = self.pipeline
        old.hand_over(pipeline)
        kept = pipeline.detector.runs_like(old.detector)
        if kept:  # e.g. only hooks or MQTT changed: a word spoken across the reload is still heard
            pipeline.detector = old.detector
        self.config, self.pipeline = config, pipeline
        if not kept:
            self.offset_s = self.position_s
            self._attach()
        # Old hooks may still be running: let them finish off this thread, audio keeps flowing.
        threading.Thread(target=old.close, name="wakeword-close-old", daemon=True).start()
        words = pipeline.detector.wake_words
        log.info(
            "reloaded: listening for %s (%s)",
            ", ".join(words),
            "same models and settings: detector state kept" if kept else "detector restarted",
        )
        _call_optional(self.lifecycle, "reloaded", words)


def run_listen(
    config: Config,
    *,
    lifecycle: Lifecycle | None = None,
    stop_event: threading.Event | None = None,
    on_detection: DetectionCallback | None = None,
    reload_config: ConfigLoader | None = None,
    source: AudioSource | None = None,
    taps: Sequence[StreamTap] = (),
) -> int:
    """Listen until stopped or the input ends; returns the process exit code.

    ``on_detection`` is called for each detection (the CLI prints a line);
    ``reload_config`` is called on SIGHUP (default: the same config, models re-read
    from disk); ``source`` replaces the one ``config.audio`` describes; ``taps`` see
    the stream (e.g. the CLI's meter), after the clip recorder ``config.audio.save_clips``
    asks for. Start-up errors (bad model, no input device, an unwritable clip directory)
    raise WakewordError; a source failing later is logged in one line and returns
    AudioError's exit code.
    """
    lifecycle = lifecycle or NullLifecycle()
    stop = stop_event or threading.Event()
    reload_requested = threading.Event()
    # Handlers first: a SIGHUP or SIGTERM while models load must not kill the process outright.
    with _signals(stop, reload_requested):
        pipeline = build_pipeline(config)
        all_taps: list[Any] = []
        try:
            if config.audio.save_clips is not None:
                from wakeword.clips import ClipRecorder

                all_taps.append(ClipRecorder(config.audio.save_clips))
                log.info("saving clips to %s", config.audio.save_clips.dir)
            all_taps.extend(taps)
            source = source or source_for(config)
            source.start()
        except BaseException:
            pipeline.close()
            for tap in all_taps:
                tap.close()
            raise
        loop = _Loop(
            config, pipeline, source, lifecycle, on_detection, reload_config or (lambda: config), all_taps
        )
        return _run(loop, stop, reload_requested)


def _run(loop: _Loop, stop: threading.Event, reload_requested: threading.Event) -> int:
    source = loop.source
    code = 0
    ended = False
    try:
        while not stop.is_set():
            if reload_requested.is_set():
                reload_requested.clear()
                loop.reload()
            chunk = source.read(POLL_S, loop.read_samples)
            if chunk is None:
                ended = True
                break
            loop.check_input()
            if source.last_gap:
                loop.gap(source.last_gap)
            if chunk.size:
                loop.process(chunk)
            loop.heartbeat()
    except AudioError as exc:
        log.error("%s", exc)
        code = exc.exit_code
    finally:
        try:
            source.stop()
            if ended:  # the file or pipe ended: run what is still buffered
                loop.finish()
                log.info("end of input after %.1f s of audio", loop.samples / source.sample_rate)
            loop.heartbeat(force=True)
        finally:
            _call_optional(loop.lifecycle, "stopping")
            loop.pipeline.close()
            loop._tap("close")
    return code
