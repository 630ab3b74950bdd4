"""Wyoming protocol wake-word server, so Home Assistant and satellites can use wakeword.

``wakeword wyoming --uri tcp://127.0.0.1:10400`` serves audio that clients stream
in; ``wakeword listen`` owns a microphone. Both run the same :class:`Detector`.

Protocol, per connection: ``describe`` -> ``info`` (one WakeProgram, one
WakeModel per loaded model); ``detect`` (optional model names) selects models
for the following stream(s); ``audio-start`` starts a stream with fresh state;
``audio-chunk`` (any rate/width/channels, converted to 16 kHz mono 16-bit) may
answer ``detection`` (name, timestamp in ms from stream start) once per spoken
wake word; ``audio-stop`` answers ``not-detected`` when nothing fired.

Models (ONNX sessions) are loaded once and shared; each connection has its own
:class:`Detector` (features, hidden state, debouncers), dropped when the stream
ends or the client goes away, so no locks are shared between clients. Inference
runs in a worker thread (``asyncio.to_thread``) to keep the event loop free for
other clients.

The ``wyoming`` package is the optional ``integrations`` extra: this module
imports without it (the CLI registers the subcommand either way) and says how
to install it when the server is started.

As a service (deploy/wakeword-wyoming.service, Type=notify) the command speaks
sd_notify through :class:`wakeword.service.SystemdLifecycle`: READY=1 with a
STATUS= line once the socket is bound and accepting, STOPPING=1 on SIGTERM or
SIGINT, which end it with exit code 0. Nothing is sent without NOTIFY_SOCKET.
There is no watchdog, on purpose: an idle server is a healthy one, so there is
no progress to prove (``listen`` pings only while audio is being processed),
and a timer that pings while the event loop turns would keep pinging with an
inference thread stuck, proving nothing the process being alive does not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wakeword import __version__
from wakeword.engine import Detector
from wakeword.errors import ConfigError, WakewordError
from wakeword.metadata import DetectorSettings
from wakeword.model import WakeWordModel

try:  # the `integrations` extra
    from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
    from wyoming.error import Error
    from wyoming.event import Event
    from wyoming.info import Attribution, Describe, Info, WakeModel, WakeProgram
    from wyoming.server import AsyncEventHandler, AsyncServer
    from wyoming.wake import Detect, NotDetected
    from wyoming.wake import Detection as DetectionEvent
except ImportError as exc:  # pragma: no cover - depends on the install
    _IMPORT_ERROR: ImportError | None = exc
    AsyncEventHandler = object  # type: ignore[assignment,misc]  # lets the module import; never used
else:
    _IMPORT_ERROR = None

if TYPE_CHECKING:
    from wakeword.detector import Detection
    from wakeword.service import SystemdLifecycle

log = logging.getLogger(__name__)

DEFAULT_URI = "tcp://127.0.0.1:10400"
#: What every stream is converted to before the Detector sees it.
SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2
CHANNELS = 1
LANGUAGES = ["en"]
ATTRIBUTION_NAME = "wakeword"
ATTRIBUTION_URL = ""  # the protocol wants one; the project has no public home page yet


def _require_wyoming() -> None:
    if _IMPORT_ERROR is not None:
        raise WakewordError(
            f"wyoming: the wyoming package is not installed ({_IMPORT_ERROR}); "
            "install it with: pip install 'wakeword[integrations]'"
        )


@dataclass
class WakeService:
    """What all connections share: the loaded models and their detector settings.

    ``detectors`` tracks the live per-connection Detectors (weakly) so tests and
    logs can see that a closed connection's state is really gone.
    """

    models: Sequence[WakeWordModel]
    threshold: float | None = None
    settings: Mapping[str, DetectorSettings] = field(default_factory=dict)
    detectors: weakref.WeakSet[Detector] = field(default_factory=weakref.WeakSet, repr=False)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("wyoming: no models to serve")
        # Fail at start-up, not at the first client, when settings do not fit the models.
        self.new_detector(None)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def select(self, names: Sequence[str] | None) -> list[WakeWordModel]:
        """The models a ``detect`` event asks for (all when it names none)."""
        if not names:
            return list(self.models)
        wanted = set(names)
        chosen = [m for m in self.models if m.name in wanted]
        unknown = sorted(wanted - {m.name for m in chosen})
        if unknown:
            log.warning("Wyoming client asked for unknown model(s) %s; serving %s", unknown, self.names)
        return chosen

    def new_detector(self, names: Sequence[str] | None) -> Detector | None:
        """Fresh per-stream state for the selected models; None when none of them is loaded."""
        models = self.select(names)
        if not models:
            return None
        settings = {m.name: self.settings[m.name] for m in models if m.name in self.settings}
        detector = Detector(models, threshold=self.threshold, settings=settings)
        self.detectors.add(detector)
        return detector

    def info(self) -> Info:
        attribution = Attribution(name=ATTRIBUTION_NAME, url=ATTRIBUTION_URL)
        models = [
            WakeModel(
                name=m.name,
                attribution=attribution,
                installed=True,
                description=m.metadata.description or f"wakeword model for {m.name!r} ({m.path.name})",
                version=m.metadata.version,
                languages=list(LANGUAGES),
                phrase=m.name.replace("_", " "),  # "hey_espresso" is said "hey espresso"
            )
            for m in self.models
        ]
        program = WakeProgram(
            name="wakeword",
            attribution=attribution,
            installed=True,
            description="wakeword: streaming GRU wake-word detector",
            version=__version__,
            models=models,
        )
        return Info(wake=[program])


class WakeEventHandler(AsyncEventHandler):
    """One client connection: its own converter, Detector and stream bookkeeping."""

    def __init__(
        self, service: WakeService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(reader, writer)
        self._service = service
        self._names: list[str] | None = None
        self._detector: Detector | None = None
        self._converter: AudioChunkConverter | None = None
        self._streaming = False
        self._detected = False
        peer = writer.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "(unix socket)"
        self._peer = f"Wyoming client {where}"
        log.debug("%s connected", self._peer)

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except ConnectionError as exc:  # the client went away while we were answering
            log.debug("%s: connection lost: %s", self._peer, exc)
            return False
        return True

    async def _dispatch(self, event: Event) -> None:
        if AudioChunk.is_type(event.type):
            await self._on_chunk(AudioChunk.from_event(event))
        elif AudioStart.is_type(event.type):
            self._start_stream()
        elif AudioStop.is_type(event.type):
            await self._stop_stream()
        elif Detect.is_type(event.type):
            self._names = Detect.from_event(event).names or None
        elif Describe.is_type(event.type):
            await self.write_event(self._service.info().event())
        else:
            log.debug("%s sent unexpected event %r", self._peer, event.type)

    async def disconnect(self) -> None:
        """Client gone (or server stopping): drop this connection's state."""
        if self._streaming:
            log.debug("%s disconnected mid-stream", self._peer)
        self._end_stream()
        log.debug("%s disconnected", self._peer)

    def _start_stream(self) -> None:
        self._detector = self._service.new_detector(self._names)
        self._converter = AudioChunkConverter(rate=SAMPLE_RATE, width=SAMPLE_WIDTH, channels=CHANNELS)
        self._streaming = True
        self._detected = False

    def _end_stream(self) -> None:
        self._detector = None
        self._converter = None
        self._streaming = False

    async def _on_chunk(self, chunk: AudioChunk) -> None:
        if not self._streaming:
            self._start_stream()  # lenient: audio without audio-start starts a stream
        converter, detector = self._converter, self._detector
        if converter is None or detector is None:  # no model selected: nothing to run
            return
        try:
            # Resampling and inference both off the event loop: a big chunk must not stall other clients.
            detections = await asyncio.to_thread(_convert_and_detect, converter, detector, chunk)
        except _UnusableAudio as exc:
            log.warning("%s sent unusable audio: %s", self._peer, exc)
            await self.write_event(Error(text=f"unusable audio chunk: {exc}", code="bad-audio").event())
            return
        await self._report(detections)

    async def _stop_stream(self) -> None:
        detector = self._detector
        if detector is not None:
            await self._report(await asyncio.to_thread(detector.flush))
        if not self._detected:
            await self.write_event(NotDetected().event())
        self._end_stream()

    async def _report(self, detections: list[Detection]) -> None:
        for detection in detections:
            self._detected = True
            timestamp_ms = round(detection.time_s * 1000)
            log.info(
                "%s: detected %s at %d ms (score %.3f)",
                self._peer,
                detection.wake_word,
                timestamp_ms,
                detection.score,
            )
            await self.write_event(DetectionEvent(name=detection.wake_word, timestamp=timestamp_ms).event())


class _UnusableAudio(Exception):
    """An audio-chunk the converter cannot make 16 kHz mono 16-bit from."""


def _convert_and_detect(
    converter: AudioChunkConverter, detector: Detector, chunk: AudioChunk
) -> list[Detection]:
    try:
        converted = converter.convert(chunk)
        samples = np.frombuffer(converted.audio, dtype="<i2")
    except Exception as exc:  # audioop and numpy raise several types for malformed audio
        raise _UnusableAudio(str(exc) or type(exc).__name__) from exc
    return detector.process(samples) if samples.size else []


def make_server(uri: str) -> AsyncServer:
    """A wyoming server for ``tcp://HOST:PORT`` or ``unix://PATH`` (ConfigError otherwise)."""
    _require_wyoming()
    if not uri.startswith(("tcp://", "unix://")):
        raise ConfigError(f"--uri {uri!r}: use tcp://HOST:PORT or unix://PATH")
    try:
        return AsyncServer.from_uri(uri)
    except ValueError as exc:
        raise ConfigError(f"--uri {uri!r}: {exc}") from exc


async def start_server(uri: str, service: WakeService) -> AsyncServer:
    """Bind and start serving without blocking (tests, embedding); stop with ``await server.stop()``."""
    server = make_server(uri)
    await server.start(partial(WakeEventHandler, service))
    return server


def serving_status(uri: str, names: Sequence[str]) -> str:
    """The STATUS= line (and log line) once serving: what is served, and where."""
    return f"Serving {', '.join(names)} to Wyoming clients on {uri}"


async def serve(uri: str, service: WakeService, lifecycle: SystemdLifecycle | None = None) -> None:
    """Serve until SIGTERM or SIGINT (or cancellation), then close every connection and return.

    ``lifecycle.ready()`` is called once the socket is bound and accepting, never before, so
    `systemctl start` returns only when a client can connect; ``lifecycle.stopping()`` on the way out.
    Not ``AsyncServer.run()``: it binds and serves in one call, with no point in between to report
    readiness, and handles SIGTERM only. Here both signals set one event, so nothing runs inside a
    signal handler and Ctrl-C ends as cleanly (exit 0) as `systemctl stop`.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / no signals here
            continue
        installed.append(sig)
    try:
        server = await start_server(uri, service)  # bound and accepting once this returns
        try:
            status = serving_status(uri, service.names)
            if lifecycle is not None:
                lifecycle.ready(service.names, status=status)  # logs the status line too
            else:
                log.info("%s", status)
            await stop.wait()
            log.info("stopping (%s)", received[0] if received else "stop requested")
        finally:
            if lifecycle is not None:
                lifecycle.stopping()
            await server.stop()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def notify_lifecycle() -> SystemdLifecycle:
    """sd_notify for the command: READY/STATUS/STOPPING, a no-op without NOTIFY_SOCKET, no watchdog.

    See the module docstring for why there is no watchdog. The lifecycle is built with
    ``watchdog=False`` so it never sends WATCHDOG=1; a WatchdogSec= in the unit gets a warning,
    since systemd would restart a healthy server every time it expired.
    """
    from wakeword.service import SystemdLifecycle, watchdog_interval_s

    if os.environ.get("NOTIFY_SOCKET") and watchdog_interval_s() is not None:
        log.warning(
            "the service manager expects watchdog pings (WatchdogSec=), but `wakeword wyoming` sends "
            "none: it will be restarted when the watchdog expires; remove WatchdogSec= from its unit"
        )
    return SystemdLifecycle(watchdog=False)


# -- command line ---------------------------------------------------------------------


def add_wyoming_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Register ``wakeword wyoming`` (``parents``: shared options such as -v/-q); runs :func:`run_wyoming`."""
    parser = subparsers.add_parser(
        "wyoming",
        parents=list(parents),
        help="serve wake-word detection over the Wyoming protocol (Home Assistant)",
        description=(
            "Serve wake-word detection to Wyoming clients (Home Assistant, satellites),\n"
            "which stream audio in. Binds to loopback by default; to accept other machines,\n"
            "pass --uri tcp://0.0.0.0:10400 explicitly (the protocol has no authentication)."
        ),
    )
    parser.add_argument(
        "--uri",
        default=DEFAULT_URI,
        help=f"where to listen: tcp://HOST:PORT or unix://PATH (default {DEFAULT_URI})",
    )
    parser.add_argument(
        "--model",
        action="append",
        type=Path,
        metavar="PATH",
        help="ONNX model to serve (repeatable; default: the config's models, else the shipped espresso)",
    )
    parser.add_argument(
        "--threshold", type=float, metavar="T", help="detection threshold for every model, in (0, 1)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML config; its models and per-model settings are served when no --model is given "
        "(default: $XDG_CONFIG_HOME/wakeword/config.yaml, /etc/wakeword/config.yaml, else built-in)",
    )
    parser.set_defaults(func=run_wyoming)
    return parser


def service_from_args(args: argparse.Namespace) -> WakeService:
    """Load the models and per-model settings that the config and the flags ask for."""
    from wakeword.config import load_config, with_overrides  # only the command line needs config

    config = with_overrides(load_config(args.config), models=args.model, threshold=args.threshold)
    models = [WakeWordModel.load(entry.path) for entry in config.models]
    settings = {
        model.name: entry.detector_settings(model.metadata.detector)
        for model, entry in zip(models, config.models, strict=True)
    }
    try:
        return WakeService(models, settings=settings)
    except ValueError as exc:  # the Detector's own checks
        raise ConfigError(f"wyoming: {exc}") from exc


def run_wyoming(args: argparse.Namespace) -> int:
    """``wakeword wyoming``: serve until interrupted; errors propagate as WakewordError."""
    _require_wyoming()
    service = service_from_args(args)
    make_server(args.uri)  # validate the URI before binding it
    lifecycle = notify_lifecycle()
    try:
        asyncio.run(serve(args.uri, service, lifecycle))
    except KeyboardInterrupt:  # Ctrl-C before the server's own signal handling was in place
        pass
    except OSError as exc:  # address in use, permission denied, bad socket path
        raise WakewordError(f"wyoming: cannot listen on {args.uri}: {exc.strerror or exc}") from exc
    return 0
