"""A fixed-size sample buffer between the capture thread and the processing loop.

The writer is an audio callback on a PortAudio thread: it must never wait for the
reader. ``write`` therefore never blocks on space; when the reader falls behind,
the *oldest* samples are dropped (the newest audio is what a wake word is in),
and the loss is counted so the reader can log it. The only lock is held for two
``memcpy``-sized slice copies, and never while waiting, so the callback cannot
stall behind a slow reader. Logging is left to the reader: it takes locks and
does I/O, neither of which belongs in an audio callback.
"""

from __future__ import annotations

import threading
import time

import numpy as np


class RingBuffer:
    """Single-producer, single-consumer ring of samples with drop-oldest overruns."""

    def __init__(self, capacity: int, dtype: np.dtype | type = np.int16) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, dtype=dtype)
        self._lock = threading.Lock()
        self._readable = threading.Event()  # set by the writer after each write / close
        self._writable = threading.Event()  # set by the reader after each read (for lossless producers)
        self._start = 0  # index of the oldest unread sample
        self._size = 0  # unread samples
        self._closed = False
        self._want = 1  # the reader's wait threshold: the writer wakes it only once this much is unread
        self.overruns = 0  # writes that had to drop unread samples
        self.dropped_samples = 0
        self.written_samples = 0
        self.dropped_before_last_read = 0  # dropped_samples as of the last read (same lock)

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def __len__(self) -> int:
        return self._size

    @property
    def free(self) -> int:
        return self.capacity - self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, samples: np.ndarray) -> int:
        """Append samples without ever waiting; returns how many unread samples were dropped."""
        chunk = np.asarray(samples, dtype=self._data.dtype).reshape(-1)
        n = chunk.size
        if n == 0:
            return 0
        cap = self.capacity
        dropped = 0
        if n > cap:  # only the newest `cap` samples can survive
            dropped = n - cap
            chunk = chunk[-cap:]
            n = cap
        with self._lock:
            overflow = self._size + n - cap
            if overflow > 0:
                dropped += overflow
                self._start = (self._start + overflow) % cap
                self._size -= overflow
            end = (self._start + self._size) % cap
            first = min(n, cap - end)
            self._data[end : end + first] = chunk[:first]
            if first < n:
                self._data[: n - first] = chunk[first:]
            self._size += n
            self.written_samples += n
            if dropped:
                self.overruns += 1
                self.dropped_samples += dropped
            wake = self._size >= self._want
        if wake:
            self._readable.set()
        return dropped

    def write_waiting(self, samples: np.ndarray, stop: threading.Event | None = None) -> bool:
        """Append without loss, waiting for space (for file/stdin producer threads, never a callback).

        Returns False if the buffer was closed or ``stop`` was set before everything was written.
        """
        chunk = np.asarray(samples, dtype=self._data.dtype).reshape(-1)
        pos = 0
        while pos < chunk.size:
            if self._closed or (stop is not None and stop.is_set()):
                return False
            room = self.free
            if room == 0:
                self._writable.clear()
                if self.free == 0:
                    self._writable.wait(0.1)
                continue
            take = min(room, chunk.size - pos)
            self.write(chunk[pos : pos + take])
            pos += take
        return True

    def read(self, max_samples: int | None = None) -> np.ndarray:
        """Remove and return up to ``max_samples`` of the oldest unread samples (maybe none)."""
        with self._lock:
            n = self._size if max_samples is None else min(self._size, max_samples)
            cap = self.capacity
            first = min(n, cap - self._start)
            out = np.empty(n, dtype=self._data.dtype)
            out[:first] = self._data[self._start : self._start + first]
            if first < n:
                out[first:] = self._data[: n - first]
            self._start = (self._start + n) % cap
            self._size -= n
            # Drops only ever remove the oldest unread samples, so everything dropped so far lies
            # before this read's first sample: readers use this to place gaps exactly.
            self.dropped_before_last_read = self.dropped_samples
        self._writable.set()
        return out

    def wait(self, min_samples: int = 1, timeout: float | None = None) -> bool:
        """Wait until ``min_samples`` are unread or the buffer is closed; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        min_samples = min(max(1, min_samples), self.capacity)
        self._want = min_samples  # set before checking, so a racing write cannot be missed
        while True:
            if self._size >= min_samples or self._closed:
                return True
            self._readable.clear()
            if self._size >= min_samples or self._closed:  # a write raced the clear
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self._want = 1
                return False
            self._readable.wait(remaining)

    def wake(self) -> None:
        """Wake a waiting reader now (the producer has news other than data)."""
        self._readable.set()

    def close(self) -> None:
        """Mark end of stream: readers drain what is left, then see ``closed``."""
        self._closed = True
        self._readable.set()
        self._writable.set()

    def clear(self) -> None:
        with self._lock:
            self._start = 0
            self._size = 0
        self._writable.set()
