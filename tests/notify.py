"""A real AF_UNIX datagram socket playing systemd's side of sd_notify(3), shared by the tests.

Real, not a mock: the daemon's sd_notify code (systemd-python, or our fallback) sends
datagrams to the path in NOTIFY_SOCKET exactly as it would under systemd.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path


class NotifySocket:
    """A real AF_UNIX datagram socket playing systemd's side of sd_notify(3)."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="wwnotify-"))  # short: sun_path is 108 bytes
        self.path = self._dir / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []  # (monotonic receive time, fields)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def snapshot(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return list(self.messages)

    def with_key(self, key: str, value: str | None = None) -> list[tuple[float, dict[str, str]]]:
        return [(t, m) for t, m in self.snapshot() if key in m and (value is None or m[key] == value)]

    def wait_for(self, key: str, value: str | None = None, *, after: int = 0, timeout: float = 30.0):
        """The (after+1)-th message carrying key[=value]; None if it never came (a guard, not timing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.with_key(key, value)
            if len(found) > after:
                return found[after]
            time.sleep(0.02)
        return None

    def statuses(self) -> list[tuple[float, str]]:
        """(receive time, STATUS= text) of every message that carried a status line."""
        return [(t, m["STATUS"]) for t, m in self.snapshot() if "STATUS" in m]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)
