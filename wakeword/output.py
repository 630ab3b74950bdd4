"""Detection lines (stdout) and log lines (stderr) for the daemons, written so output never stalls them."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger(__name__)


class _RawWriter:
    """Writes text to a stream's file descriptor, one write(2) per call where it fits in one.

    The raw fd, not the stream: a thread stuck in a write then holds no lock of the buffered
    writer that the interpreter flushes at exit, and a line of up to PIPE_BUF (4 KiB) bytes
    reaches a pipe whole or not at all. Streams without a fd (tests' StringIO) are written as is.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._errors = getattr(stream, "errors", None) or "strict"
        self._fd: int | None = None
        if stream is not None:
            try:
                stream.flush()
                self._fd = stream.fileno()
            except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
                pass

    def write(self, text: str) -> None:
        if self._stream is None:  # started with the stream closed: print() discards too
            return
        if self._fd is None:
            self._stream.write(text)
            self._stream.flush()
            return
        data = memoryview(text.encode(self._encoding, self._errors))
        while data:
            data = data[os.write(self._fd, data) :]


class StdoutSink:
    """`listen`'s detection lines on stdout, written by a daemon thread so output can never stall detection.

    ``print(flush=True)`` blocks once the pipe to a consumer that stopped reading is full
    (`wakeword listen | stuck-consumer`); in the processing loop that would stop the audio, the hooks
    and the watchdog pings. Here the loop only appends to a bounded queue; a writer thread does the
    (possibly blocking) writes, in order. When the queue is full the line is dropped and a warning
    says so, at most once per ``warn_every_s`` with the count, as hooks skip a run rather than queue.
    :meth:`close` flushes what is queued but waits at most ``close_timeout_s`` for a stalled pipe.
    A closed pipe (``| head``) sets ``broken`` and calls ``on_broken``; the caller ends quietly then.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        max_lines: int = 100,
        warn_every_s: float = 60.0,
        close_timeout_s: float = 1.5,
        on_broken: Callable[[], None] | None = None,
    ) -> None:
        self._out = _RawWriter(sys.stdout if stream is None else stream)
        self.max_lines = max_lines
        self.warn_every_s = warn_every_s
        self.close_timeout_s = close_timeout_s
        self.on_broken = on_broken
        self.broken = False
        self.dropped = 0  # lines dropped because the queue was full, or left queued at close
        self._failed = False  # stdout raised something other than a closed pipe: drop from then on
        self._lines: deque[str] = deque()
        self._writing = False
        self._closed = False
        self._warned_at: float | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="wakeword-stdout", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        """Queue one line (without its newline); never blocks on the pipe."""
        with self._cond:
            if self.broken or self._failed or self._closed:
                return
            if len(self._lines) < self.max_lines:
                self._lines.append(line)
                self._cond.notify()
                return
            self.dropped += 1
            now = time.monotonic()
            warn = self._warned_at is None or now - self._warned_at >= self.warn_every_s
            if warn:
                self._warned_at = now
            dropped = self.dropped
        if warn:  # outside the lock: stderr may be slow too
            log.warning(
                "stdout is not being read (is the consumer stuck?): dropped %d detection line(s) so far; "
                "detection and hooks carry on",
                dropped,
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
                while not self._lines and not self._closed:
                    self._cond.wait()
                if not self._lines:
                    return
                line = self._lines.popleft()
                self._writing = True
            try:
                self._out.write(line + "\n")
            except BrokenPipeError:
                with self._cond:
                    self.broken = True
                    self._lines.clear()
                    self._writing = False
                    self._cond.notify_all()
                if self.on_broken is not None:
                    self.on_broken()
                return
            except (OSError, ValueError, UnicodeError) as exc:
                with self._cond:
                    self._failed = True
                    self.dropped += len(self._lines) + 1
                    self._lines.clear()
                    self._writing = False
                    self._cond.notify_all()
                log.error("cannot write detections to stdout (%s); detection and hooks carry on", exc)
                return

    def close(self) -> None:
        """Stop taking lines and write what is queued, waiting at most ``close_timeout_s``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._lines and not self._writing, self.close_timeout_s)
            left = len(self._lines) + self._writing
            self._lines.clear()
            self.dropped += left
            dropped, warned = self.dropped, self._warned_at is not None
        if left:
            log.log(
                logging.INFO if warned else logging.WARNING,
                "stdout still not read at exit: gave up on %d queued detection line(s); "
                "%d not printed in all",
                left,
                dropped,
            )
        elif dropped and not (self.broken or self._failed):
            log.info("%d detection line(s) were not printed: stdout was not being read", dropped)


class StderrLogHandler(logging.Handler):
    """The daemons' log lines on stderr, written by a daemon thread so logging can never stall them.

    A StreamHandler writes from the thread that logs: once the pipe to a stderr nobody reads is
    full (`wakeword listen 2>&1 | stuck-consumer`), the processing loop, the hooks and the
    watchdog pings would stop in the middle of a log call. Here :meth:`emit` only formats the record
    and appends the line to a bounded queue; a writer thread does the (possibly blocking) writes,
    in order. When the queue is full the line is dropped and counted; once writing works again
    the writer adds one warning with the count, at most once per ``warn_every_s`` (and once more at
    exit for drops not yet reported). :meth:`close` writes what is queued but waits at most
    ``close_timeout_s`` for a stalled pipe. A closed stderr (``2>&1 | head``) is dropped quietly.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        max_lines: int = 100,
        warn_every_s: float = 60.0,
        close_timeout_s: float = 1.5,
    ) -> None:
        super().__init__()
        self.stream = sys.stderr if stream is None else stream
        self._out = _RawWriter(self.stream)
        self.max_lines = max_lines
        self.warn_every_s = warn_every_s
        self.close_timeout_s = close_timeout_s
        self.dropped = 0  # lines dropped because the queue was full, or left queued at close
        self._reported = 0  # of those, how many a warning line has reported
        self._warned_at: float | None = None
        self._failed = False  # stderr is closed or failing: nothing can be written any more
        self._lines: deque[str] = deque()
        self._writing = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="wakeword-stderr", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the formatted record; never blocks on the pipe."""
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        with self._cond:
            if self._failed or self._closed:
                return
            if len(self._lines) >= self.max_lines:
                self.dropped += 1
                return
            self._lines.append(line)
            self._cond.notify()

    def _drop_warning(self) -> str | None:
        """The line reporting unreported drops, if one is due (call with the lock held)."""
        if self.dropped == self._reported:
            return None
        now = time.monotonic()
        if not self._closed and self._warned_at is not None and now - self._warned_at < self.warn_every_s:
            return None
        self._warned_at, self._reported = now, self.dropped
        record = logging.LogRecord(
            log.name,
            logging.WARNING,
            __file__,
            0,
            "stderr was not being read (is the consumer stuck?): dropped %d log line(s) so far; "
            "detection and hooks carried on",
            (self.dropped,),
            None,
        )
        return self.format(record) + "\n"

    def _run(self) -> None:
        while True:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
                while not self._lines and not self._closed:
                    self._cond.wait()
                warning = self._drop_warning()
                if not self._lines and warning is None:
                    return
                text = (warning or "") + (self._lines.popleft() if self._lines else "")
                self._writing = True
            try:
                self._out.write(text)
            except (OSError, ValueError, UnicodeError):  # closed (EPIPE) or failing: stop quietly
                with self._cond:
                    self._failed = True
                    self._lines.clear()
                    self._writing = False
                    self._cond.notify_all()
                return

    def close(self) -> None:
        """Stop taking lines and write what is queued, waiting at most ``close_timeout_s``."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._cond.notify_all()
                self._cond.wait_for(lambda: not self._lines and not self._writing, self.close_timeout_s)
                self.dropped += len(self._lines)
                self._lines.clear()
        super().close()
