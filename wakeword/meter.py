"""``listen --meter``: the input level and each model's score against its threshold, live, on a terminal.

Why: a user who cannot see how close a miss came cannot tell a quiet microphone from a model
that does not know their voice. The meter is a :class:`~wakeword.listen.StreamTap`: the
processing thread only adds up the audio's energy and keeps each model's highest smoothed score
since the last frame drawn; a thread of its own draws about ten times a second.

It draws with plain ANSI: the bottom lines of the terminal are set apart (a scroll region,
as apt's progress bar does), so detection lines and log lines scroll above it untouched, and
each redraw is one write(2) (save cursor, draw, restore). Without a terminal (a pipe,
journald, ``TERM=dumb``) there is no meter and nothing extra is printed.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

import numpy as np

if TYPE_CHECKING:
    from wakeword.detector import Detection
    from wakeword.engine import Detector

log = logging.getLogger(__name__)

INTERVAL_S = 0.1
FLOOR_DB = -60.0  # the level bar spans FLOOR_DB .. 0 dBFS
ESC = "\x1b"


def terminal_fd(streams: Sequence[TextIO]) -> int | None:
    """The first of ``streams`` that is a terminal able to take ANSI, or None."""
    if os.environ.get("TERM", "") in ("", "dumb"):
        return None
    for stream in streams:
        try:
            if stream.isatty():
                return stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
    return None


def bar(fraction: float, width: int, marker: float | None = None) -> str:
    """``[####----|---]``: ``fraction`` filled, an optional ``|`` at ``marker`` (both in 0..1)."""
    width = max(1, width)
    filled = int(round(min(max(fraction, 0.0), 1.0) * width))
    cells = ["#"] * filled + ["-"] * (width - filled)
    if marker is not None:
        at = min(width - 1, max(0, int(round(marker * width))))
        cells[at] = "|"
    return "[" + "".join(cells) + "]"


class Meter:
    """Draws the live meter on terminal ``fd`` until :meth:`close`."""

    wants_scores = True

    def __init__(self, fd: int, *, interval_s: float = INTERVAL_S) -> None:
        self.fd = fd
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._thresholds: dict[str, float] = {}
        self._peaks: dict[str, float] = {}
        self._sumsq = 0.0
        self._count = 0
        self._level_db = -math.inf
        self._last: tuple[str, float, str] | None = None  # (wake word, score, wall clock)
        self._region: tuple[int, int] | None = None  # (terminal rows, meter lines) the region was set for
        self._attached = False  # nothing is drawn before the loop runs (a start-up error leaves no trace)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wakeword-meter", daemon=True)
        self._thread.start()

    # -- StreamTap (the processing thread) ------------------------------------------------------
    def attach(self, detector: Detector, offset_s: float) -> None:
        thresholds = {word: d.settings.threshold for word, d in detector.debouncers.items()}
        with self._lock:
            self._thresholds = thresholds
            self._peaks = dict.fromkeys(thresholds, 0.0)
            self._attached = True

    def step(
        self,
        chunk: np.ndarray,
        position: int,
        detections: Sequence[Detection],
        scores: dict[str, tuple[int, list[float]]],
    ) -> None:
        x = chunk.astype(np.float32)
        energy = float(np.dot(x, x)) / (32768.0 * 32768.0)
        with self._lock:
            self._sumsq += energy
            self._count += chunk.size
            for word, (_, values) in scores.items():
                if values:
                    self._peaks[word] = max(self._peaks.get(word, 0.0), max(values))
            if detections:
                d = detections[-1]
                self._last = (d.wake_word, d.score, datetime.now().strftime("%H:%M:%S"))

    def finish(self) -> None:
        pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        if self._region is not None:
            rows, lines = self._region
            clear = "".join(f"{ESC}[{rows - lines + 1 + i};1H{ESC}[2K" for i in range(lines))
            self._write(f"{ESC}7{ESC}[r{clear}{ESC}8")
            self._region = None

    # -- drawing (the meter's thread) ------------------------------------------------------------
    def lines(self, cols: int) -> list[str]:
        """The meter's text, one line per row, at most ``cols`` wide (taking what was gathered)."""
        with self._lock:
            if self._count:
                rms = math.sqrt(self._sumsq / self._count)
                self._level_db = 20 * math.log10(rms) if rms > 0 else -math.inf
            self._sumsq, self._count = 0.0, 0
            peaks, self._peaks = self._peaks, dict.fromkeys(self._thresholds, 0.0)
            thresholds, last = dict(self._thresholds), self._last
        label = max([5, *(len(w) for w in thresholds)])
        width = max(10, cols - label - 34)
        db = self._level_db
        level = 0.0 if db == -math.inf else (max(db, FLOOR_DB) - FLOOR_DB) / -FLOOR_DB
        shown = "  -inf" if db == -math.inf else f"{db:6.1f}"
        out = [f"{'input'.ljust(label)} {shown} dBFS {bar(level, width)}"]
        for word, threshold in thresholds.items():
            score = peaks.get(word, 0.0)
            line = f"{word.ljust(label)} {score:6.3f}      {bar(score, width, threshold)} thr {threshold:.2f}"
            out.append(line)
        out.append("last: " + (f"{last[0]} at {last[2]} (score {last[1]:.3f})" if last else "none yet"))
        return [line[:cols] for line in out]

    def draw(self) -> None:
        if not self._attached or self._stop.is_set():
            return
        try:
            cols, rows = os.get_terminal_size(self.fd)
        except OSError:
            return
        text = self.lines(cols)
        n = len(text)
        if rows <= n + 1:
            return  # no room
        prefix = ""
        if self._region != (rows, n):
            # Make room below the output, then keep the bottom n lines out of the scroll region.
            prefix = "\n" * n + f"{ESC}7{ESC}[1;{rows - n}r{ESC}8{ESC}[{n}A"
            self._region = (rows, n)
        body = "".join(f"{ESC}[{rows - n + 1 + i};1H{ESC}[2K{line}" for i, line in enumerate(text))
        self._write(f"{prefix}{ESC}7{body}{ESC}8")

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError as exc:  # the terminal went away: stop drawing, never disturb detection
            log.debug("meter: %s", exc)
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.draw()


def open_meter(streams: Sequence[TextIO]) -> Meter | None:
    """A meter on the first terminal among ``streams``; None (and nothing printed) without one."""
    fd = terminal_fd(streams)
    if fd is None:
        log.debug("--meter: no terminal, so no meter")
        return None
    return Meter(fd)
