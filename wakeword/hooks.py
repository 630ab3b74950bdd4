"""Shell hooks: run a command for each detection without ever blocking the audio path.

Each run is a subprocess in its own session (process group), started and
watched by a short-lived thread, so :meth:`HookRunner.fire` returns at once.
Detection data reaches the command only through environment variables and one
JSON line on stdin, never through the command text, so a wake word name or a
score can not inject shell syntax. Everything is bounded: at most
``max_concurrent`` runs per hook (further detections skip the hook with a
warning instead of queueing), a timeout that kills the whole process group,
and only the last few hundred bytes of output are kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from wakeword.detector import Detection

log = logging.getLogger(__name__)

#: Bytes of a failing hook's stderr kept for the log line.
STDERR_TAIL_BYTES = 500
#: Seconds between SIGTERM and SIGKILL when a hook times out.
KILL_GRACE_S = 2.0
_SHELL = "/bin/sh"
#: systemd's per-process variables: meant for the daemon itself, never for its hooks.
_PRIVATE_ENV = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


@dataclass(frozen=True)
class HookSettings:
    """One hook. ``command``: a string (run by ``/bin/sh -c``) or an argv list (executed directly)."""

    command: str | tuple[str, ...]
    timeout_s: float = 10.0
    max_concurrent: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.command, str):
            object.__setattr__(self, "command", tuple(self.command))
        if not self.command or (isinstance(self.command, tuple) and not all(self.command)):
            raise ValueError("hook command must not be empty")
        if isinstance(self.command, tuple) and not all(isinstance(a, str) for a in self.command):
            raise ValueError("hook command list must contain only strings")
        if not self.timeout_s > 0:
            raise ValueError("hook timeout_s must be > 0")
        if self.max_concurrent < 1:
            raise ValueError("hook max_concurrent must be >= 1")

    @property
    def argv(self) -> list[str]:
        if isinstance(self.command, str):
            return [_SHELL, "-c", self.command]
        return list(self.command)

    @property
    def label(self) -> str:
        """The command as one short line, for logs."""
        text = self.command if isinstance(self.command, str) else shlex.join(self.command)
        text = " ".join(text.split())
        return text if len(text) <= 80 else text[:77] + "..."


def hook_environment(detection: Detection, wall_time: datetime | None = None) -> dict[str, str]:
    """The WAKEWORD_* variables a hook receives."""
    wall_time = wall_time or datetime.now().astimezone()
    return {
        "WAKEWORD_NAME": detection.wake_word,
        "WAKEWORD_SCORE": f"{detection.score:.3f}",
        "WAKEWORD_TIME": wall_time.isoformat(timespec="milliseconds"),
        "WAKEWORD_STREAM_TIME": f"{detection.time_s:.3f}",
    }


def hook_event_json(detection: Detection, wall_time: datetime) -> str:
    """The event as one JSON line (what the hook reads on stdin)."""
    event = {
        "event": "detection",
        "wake_word": detection.wake_word,
        "score": round(detection.score, 6),
        "time": wall_time.isoformat(timespec="milliseconds"),
        "stream_time_s": round(detection.time_s, 6),
        "frame": detection.frame,
    }
    return json.dumps(event) + "\n"


class _Tail:
    """Keeps the last ``limit`` bytes written to it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = b""

    def add(self, chunk: bytes) -> None:
        self.data = (self.data + chunk)[-self.limit :]

    def text(self) -> str:
        return " ".join(self.data.decode("utf-8", "replace").split())


class HookRunner:
    """Runs every configured hook for each detection, in the background."""

    def __init__(self, hooks: Sequence[HookSettings] | HookSettings = ()) -> None:
        self.hooks: tuple[HookSettings, ...] = (hooks,) if isinstance(hooks, HookSettings) else tuple(hooks)
        self._lock = threading.Lock()
        self._running = [0] * len(self.hooks)
        self._threads: set[threading.Thread] = set()
        self._procs: set[subprocess.Popen] = set()
        self._closed = False

    def running(self) -> int:
        """Hook runs in flight (all hooks)."""
        with self._lock:
            return sum(self._running)

    def fire(self, detection: Detection) -> None:
        """Start each hook for ``detection``; returns immediately. Over a hook's cap the run is skipped."""
        if not self.hooks:
            return
        wall_time = datetime.now().astimezone()
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env.update(hook_environment(detection, wall_time))
        payload = hook_event_json(detection, wall_time).encode()
        for index, hook in enumerate(self.hooks):
            with self._lock:
                if self._closed:
                    log.warning("hook runner closed; not running %r for %s", hook.label, detection.wake_word)
                    return
                if self._running[index] >= hook.max_concurrent:
                    log.warning(
                        "hook %r skipped for %s: %d run(s) still in flight (max_concurrent=%d)",
                        hook.label,
                        detection.wake_word,
                        self._running[index],
                        hook.max_concurrent,
                    )
                    continue
                self._running[index] += 1
                thread = threading.Thread(
                    target=self._run, args=(index, hook, env, payload), name="wakeword-hook", daemon=True
                )
                self._threads.add(thread)
            thread.start()

    def _run(self, index: int, hook: HookSettings, env: dict[str, str], payload: bytes) -> None:
        try:
            self._run_once(hook, env, payload)
        except Exception as exc:  # a hook must never take the daemon down
            log.error("hook %r could not run: %s", hook.label, " ".join(str(exc).split()))
        finally:
            with self._lock:
                self._running[index] -= 1
                self._threads.discard(threading.current_thread())

    def _run_once(self, hook: HookSettings, env: dict[str, str], payload: bytes) -> None:
        started = time.monotonic()
        proc = subprocess.Popen(
            hook.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # own process group: a timeout kills the hook and its children
            close_fds=True,
        )
        with self._lock:
            self._procs.add(proc)
        try:
            self._feed_stdin(proc, payload)
            stdout, stderr = _Tail(STDERR_TAIL_BYTES), _Tail(STDERR_TAIL_BYTES)
            timed_out = not self._drain(
                proc, {proc.stdout: stdout, proc.stderr: stderr}, started + hook.timeout_s
            )
            if timed_out:
                self._kill_group(proc)
                log.warning("hook %r timed out after %.1f s; killed it", hook.label, hook.timeout_s)
                return
            code = proc.returncode
            if stdout.data:
                log.debug("hook %r stdout: %s", hook.label, stdout.text())
            if code != 0:
                tail = stderr.text()
                log.warning(
                    "hook %r failed with exit status %d%s", hook.label, code, f": {tail}" if tail else ""
                )
            else:
                log.debug("hook %r finished in %.2f s", hook.label, time.monotonic() - started)
        finally:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe and not pipe.closed:
                    pipe.close()
            if proc.returncode is None:
                self._kill_group(proc)
            with self._lock:
                self._procs.discard(proc)

    @staticmethod
    def _feed_stdin(proc: subprocess.Popen, payload: bytes) -> None:
        """One small JSON line; fits in the pipe buffer, so the write cannot block."""
        assert proc.stdin is not None
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the hook does not read stdin: fine

    @staticmethod
    def _drain(proc: subprocess.Popen, tails: dict, deadline: float) -> bool:
        """Read output into bounded tails until the hook exits; False when the deadline passes first."""
        with selectors.DefaultSelector() as selector:
            for pipe in tails:
                selector.register(pipe, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return proc.poll() is not None
                if not selector.get_map():
                    # Output closed; wait for the exit itself.
                    try:
                        proc.wait(timeout=remaining)
                        return True
                    except subprocess.TimeoutExpired:
                        return False
                for key, _ in selector.select(timeout=min(remaining, 0.2)):
                    data = os.read(key.fd, 65536)
                    if data:
                        tails[key.fileobj].add(data)
                    else:
                        selector.unregister(key.fileobj)
                # A hook may exit while a background child keeps its pipes open: do not wait for that.
                if proc.poll() is not None:
                    for key in list(selector.get_map().values()):
                        try:
                            os.set_blocking(key.fd, False)
                            tails[key.fileobj].add(os.read(key.fd, 65536) or b"")
                        except (BlockingIOError, OSError):
                            pass
                    return True

    @staticmethod
    def _kill_group(proc: subprocess.Popen) -> None:
        """SIGTERM the hook's process group, then SIGKILL if it is still there after a grace period."""
        for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait_s)
                if sig == signal.SIGTERM:
                    # The leader is gone; make sure no child of it lingers in the group.
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self, timeout_s: float | None = None) -> None:
        """Stop accepting detections and wait for hooks in flight.

        Waits up to ``timeout_s`` (default: the longest hook timeout plus the kill grace),
        then kills whatever is still running.
        """
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if timeout_s is None:
            timeout_s = max((h.timeout_s for h in self.hooks), default=0.0) + 2 * KILL_GRACE_S
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftover = list(self._procs)
        for proc in leftover:
            log.warning("hook (pid %d) still running at shutdown; killing it", proc.pid)
            self._kill_group(proc)
        for thread in threads:
            thread.join(2 * KILL_GRACE_S + 1)

    def __enter__(self) -> HookRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
