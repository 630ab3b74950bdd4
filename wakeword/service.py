"""The systemd shell around the live loop: sd_notify readiness, watchdog, status, journald logging.

`SystemdLifecycle` implements listen.py's Lifecycle protocol. The loop calls `ready()` once the
model is loaded and audio is flowing (so `systemctl start` returns only when wake words can be
heard), `heartbeat()` at least once a second from the processing loop, and `stopping()` on the
way out. A watchdog ping is sent only while audio is being processed (seconds_processed grows):
a stuck loop *or* a microphone that silently stopped delivering gets the service restarted,
not merely a live process. `wakeword wyoming` uses it too, for READY=1, STATUS= and STOPPING=1
only (no watchdog: see wakeword/wyoming.py).

Everything degrades to a no-op: without systemd-python, or when NOTIFY_SOCKET is unset (a
terminal, a test, a container), the daemon runs exactly the same and sends nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from wakeword.output import StderrLogHandler

log = logging.getLogger(__name__)

#: Seconds between two STATUS= updates that only refresh counters (a detection is sent at once).
STATUS_INTERVAL_S = 5.0

Notify = Callable[[str], Any]


def _systemd_notify() -> Notify | None:
    """systemd-python's sd_notify wrapper, or None when the optional extra is not installed."""
    try:
        from systemd import daemon
    except ImportError:
        return None
    return daemon.notify


def watchdog_interval_s(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises.

    None when the service manager set no watchdog, or set it for another process (WATCHDOG_PID).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "").strip()
    if not usec:
        return None
    watchdog_pid = env.get("WATCHDOG_PID", "").strip()
    if watchdog_pid and watchdog_pid != str(os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec)
        return None
    if value <= 0:
        return None
    return value / 2e6


def _count(value: Any) -> int:
    """A counter that may come as an int or as a per-wake-word mapping."""
    if isinstance(value, Mapping):
        return sum(int(v) for v in value.values())
    return int(value)


def format_status(wake_words: Iterable[str], detections: Any = 0, overruns: Any = 0) -> str:
    """One line for `systemctl status`: what we listen for and how it is going."""
    words = ", ".join(wake_words) or "(no model)"
    return f"Listening for {words}; {_count(detections)} detections, {_count(overruns)} overruns"


class SystemdLifecycle:
    """Lifecycle for listen.run_listen that reports to systemd over NOTIFY_SOCKET.

    Thread-safe: the processing loop heartbeats while the main thread may be stopping.
    """

    def __init__(
        self,
        *,
        notify: Notify | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        status_interval_s: float = STATUS_INTERVAL_S,
        watchdog: bool = True,
    ) -> None:
        """``watchdog=False``: never send WATCHDOG=1, whatever WATCHDOG_USEC says (for a process whose
        liveness a ping cannot prove, like the Wyoming server that has no audio of its own)."""
        env = os.environ if env is None else env
        self._clock = clock
        self._status_interval_s = status_interval_s
        self._lock = threading.Lock()
        self._notify: Notify | None = None
        if env.get("NOTIFY_SOCKET"):
            self._notify = notify if notify is not None else _systemd_notify()
            if self._notify is None:
                log.warning(
                    "NOTIFY_SOCKET is set but systemd-python is not installed "
                    "(pip install 'wakeword[systemd]'): systemd will not see the daemon become ready"
                )
        self.watchdog_s = watchdog_interval_s(env) if self._notify and watchdog else None
        self._wake_words: tuple[str, ...] = ()
        self._last_ping = float("-inf")
        self._last_status_at = float("-inf")
        self._last_status = ""
        self._last_counts: tuple[int, int] | None = None
        self._counts = (0, 0)  # latest (detections, overruns) seen, for reload statuses
        self._audio_at_ping: float | None = None  # seconds_processed when we last pinged
        self._stalled = False
        self._input_lost = False  # set between input_lost() and input_restored()

    @property
    def enabled(self) -> bool:
        """True when messages actually go to a service manager."""
        return self._notify is not None

    def _send(self, *fields: str) -> None:
        if self._notify is None:
            return
        message = "\n".join(fields)
        try:
            self._notify(message)
        except OSError as error:  # a vanished socket must never take the daemon down
            log.debug("sd_notify failed: %s", error)

    def _status_field(self, status: str) -> str:
        self._last_status = status
        self._last_status_at = self._clock()
        return f"STATUS={status}"

    def ready(self, wake_words: Iterable[str], *, status: str | None = None) -> None:
        """Models loaded and audio flowing: systemctl start returns now.

        ``status`` replaces the STATUS= text (default: :func:`format_status`, what `listen` shows).
        """
        with self._lock:
            self._wake_words = tuple(wake_words)
            self._last_counts = None
            if status is None:
                status = format_status(self._wake_words)
            self._last_ping = self._clock()
            self._send("READY=1", self._status_field(status), *self._watchdog_fields())
        log.info("ready: %s", status)

    def _watchdog_fields(self) -> tuple[str, ...]:
        return ("WATCHDOG=1",) if self.watchdog_s is not None else ()

    def heartbeat(self, stats: Any) -> None:
        """Called from the processing loop: WATCHDOG=1 every half period, STATUS= when it changed."""
        if self._notify is None:
            return
        with self._lock:
            now = self._clock()
            fields: list[str] = []
            due_ping = self.watchdog_s is not None and now - self._last_ping >= self.watchdog_s * 0.9
            if due_ping and self._audio_progressed(stats):
                self._last_ping = now
                fields.append("WATCHDOG=1")
            words = tuple(getattr(stats, "wake_words", self._wake_words)) or self._wake_words
            counts = self._counts = (_count(stats.detections), _count(stats.overruns))
            new_detection = self._last_counts is not None and counts[0] != self._last_counts[0]
            due = now - self._last_status_at >= self._status_interval_s
            if counts != self._last_counts and (new_detection or due or self._last_counts is None):
                self._last_counts = counts
                status = format_status(words, *counts)
                if status != self._last_status:
                    fields.append(self._status_field(status))
            if fields:
                self._send(*fields)

    def _audio_progressed(self, stats: Any) -> bool:
        """True if audio was processed since the last ping (always, for stats without the field)."""
        processed = getattr(stats, "seconds_processed", None)
        if processed is None:
            return True
        if self._input_lost:
            # A known loss is being retried with backoff by a live loop: a restart would not
            # bring the device back sooner, and a restart storm would hit StartLimitBurst.
            return True
        if self._audio_at_ping is not None and processed <= self._audio_at_ping:
            if not self._stalled:
                self._stalled = True
                log.warning(
                    "no audio processed for %.1f s: withholding watchdog pings (systemd restarts us "
                    "if it lasts)",
                    self._clock() - self._last_ping,
                )
            return False
        if self._stalled:
            self._stalled = False
            log.info("audio is flowing again")
        self._audio_at_ping = processed
        return True

    def reloading(self) -> None:
        """SIGHUP received: the service manager shows "reloading" until reloaded()/reload_failed()."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        with self._lock:
            self._send("RELOADING=1", f"MONOTONIC_USEC={usec}", self._status_field("Reloading configuration"))

    def reloaded(self, wake_words: Iterable[str]) -> None:
        """The new configuration is live."""
        with self._lock:
            self._wake_words = tuple(wake_words)
            status = format_status(self._wake_words, *self._counts)
            self._send("READY=1", self._status_field(f"Reloaded; {status}"))

    def reload_failed(self, error: BaseException | str) -> None:
        """The new configuration was rejected; the old one keeps running."""
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        with self._lock:
            status = f"Reload failed ({reason}); {format_status(self._wake_words, *self._counts)}"
            self._send("READY=1", self._status_field(status))

    def input_lost(self, reason: str) -> None:
        """The microphone is gone and being retried: `systemctl status` says so until it is back."""
        with self._lock:
            self._input_lost = True
            self._send(self._status_field(f"Audio input lost ({reason or 'no reason given'}); retrying"))

    def input_restored(self) -> None:
        """Capturing again: the next heartbeat puts the normal status line back."""
        with self._lock:
            self._input_lost = False
            self._audio_at_ping = None
            self._last_counts = None

    def stopping(self) -> None:
        """Clean shutdown started (SIGTERM/SIGINT): systemd shows "deactivating"."""
        with self._lock:
            self._send("STOPPING=1", self._status_field("Stopping"))


def running_under_systemd(env: Mapping[str, str] | None = None) -> bool:
    """True when systemd started us with its log stream (JOURNAL_STREAM) or as a unit (INVOCATION_ID)."""
    env = os.environ if env is None else env
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def setup_logging(
    level: int = logging.INFO,
    *,
    env: Mapping[str, str] | None = None,
    stream: Any = None,
    nonblocking: bool = False,
) -> str:
    """Send the root logger to journald when systemd started us, else to stderr.

    JournalHandler silently drops messages when journald is absent, so it is used only when the
    environment says a service manager (and so a journal) is there. Returns "journal" or "stderr".
    ``nonblocking`` (the daemons): stderr is written by a thread through a bounded queue
    (:class:`wakeword.output.StderrLogHandler`), so a stderr nobody reads cannot stall the caller;
    call :func:`finish_logging` before exiting to write out what is queued.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_wakeword", False):
            root.removeHandler(handler)
            handler.close()
    handler: logging.Handler | None = None
    target = "stderr"
    if running_under_systemd(env):
        try:
            from systemd.journal import JournalHandler
        except ImportError:
            pass
        else:
            handler = JournalHandler(SYSLOG_IDENTIFIER="wakeword")
            handler.setFormatter(logging.Formatter("%(message)s"))
            target = "journal"
    if handler is None:
        stream = sys.stderr if stream is None else stream
        handler = StderrLogHandler(stream) if nonblocking else logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._wakeword = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return target


def finish_logging() -> None:
    """Write out what a nonblocking :func:`setup_logging` still has queued (waits at most ~1.5 s)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, StderrLogHandler):
            handler.close()
