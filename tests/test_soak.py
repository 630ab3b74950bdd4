"""Soak: `wakeword listen` on a looped audio source, at real-time pace, with a hook on every detection.

A writer thread feeds ``wakeword listen --input -`` (raw s16le, the arecord recipe) from one looped
period of audio: digital silence with one loud noise burst, which the ``loud_model_path`` fixture
fires on exactly once. The daemon runs a shell hook for each detection. Once a second the test
reads the daemon's resident memory from /proc/PID/status. It asserts counts, not timing:

* every injected burst is detected (stdout lines) and every detection ran the hook (hook output);
* resident memory after warm-up grows by no more than 5 MB.

CI runs 60 s (``WAKEWORD_SOAK_S`` unset). ``make soak`` runs it for 30 minutes or more and prints
the figures (``WAKEWORD_SOAK_S=1800``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
SOAK_S = float(os.environ.get("WAKEWORD_SOAK_S", "60"))
WARMUP_S = min(60.0, max(10.0, SOAK_S / 5))
PERIOD_S = 3.0  # one burst per period: the loud model's refractory (0.5 s) never merges two
BURST_S = 0.4
MAX_GROWTH_KB = 5 * 1024
CHUNK_S = 0.1


def one_period() -> bytes:
    """PERIOD_S of s16le audio: silence, a 0.4 s noise burst at 1.0 s, silence."""
    rng = np.random.default_rng(11)
    audio = np.zeros(int(PERIOD_S * RATE), dtype=np.float32)
    start = int(1.0 * RATE)
    audio[start : start + int(BURST_S * RATE)] = 0.3 * rng.standard_normal(int(BURST_S * RATE))
    return np.rint(np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RealtimeWriter(threading.Thread):
    """Writes whole periods into the daemon's stdin at real-time pace until ``duration_s`` is covered."""

    def __init__(self, pipe, duration_s: float) -> None:
        super().__init__(name="soak-writer", daemon=True)
        self.pipe = pipe
        self.periods = max(1, int(duration_s // PERIOD_S))
        self.written_periods = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        period = one_period()
        chunk = int(CHUNK_S * RATE) * 2
        t0 = time.monotonic()
        sent = 0
        try:
            for _ in range(self.periods):
                for pos in range(0, len(period), chunk):
                    piece = period[pos : pos + chunk]
                    delay = t0 + (sent + len(piece)) / 2 / RATE - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    self.pipe.write(piece)
                    self.pipe.flush()
                    sent += len(piece)
                self.written_periods += 1
        except (BrokenPipeError, OSError) as exc:
            self.error = exc
        finally:
            with contextlib.suppress(OSError):
                self.pipe.close()


def _drain(stream, into: list[bytes]) -> threading.Thread:
    def run() -> None:
        for line in iter(stream.readline, b""):
            into.append(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_soak_no_memory_growth_and_no_missed_detection(loud_model_path: Path, tmp_path: Path) -> None:
    hook_log = tmp_path / "hook.log"
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wakeword.cli",
            "listen",
            "--json",
            "--input",
            "-",
            "--model",
            str(loud_model_path),
            "--hook",
            f'cat >/dev/null; echo "$WAKEWORD_NAME" >> {hook_log}',
        ],  # fmt: skip
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout: list[bytes] = []
    stderr: list[bytes] = []
    readers = [_drain(proc.stdout, stdout), _drain(proc.stderr, stderr)]
    writer = RealtimeWriter(proc.stdin, SOAK_S)
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    writer.start()
    try:
        while writer.is_alive():
            kb = rss_kb(proc.pid)
            if kb is not None:
                samples.append((time.monotonic() - start, kb))
            writer.join(1.0)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for reader in readers:
        reader.join(5)
    log = b"".join(stderr).decode(errors="replace")
    assert writer.error is None, f"daemon stopped reading stdin: {writer.error}\n{log[-2000:]}"
    assert code == 0, log[-2000:]
    assert "Traceback" not in log

    detections = [json.loads(line) for line in stdout if line.strip()]
    injected = writer.written_periods
    after = [kb for t, kb in samples if t >= WARMUP_S]
    assert len(after) >= 3, f"too few RSS samples after warm-up: {samples}"
    baseline, peak = after[0], max(after)
    hooks = hook_log.read_text().split() if hook_log.exists() else []
    print(
        f"\nsoak: {SOAK_S:.0f} s of audio, {injected} bursts injected, {len(detections)} detected, "
        f"{len(hooks)} hook runs; RSS at warm-up ({WARMUP_S:.0f} s) {baseline / 1024:.1f} MB, "
        f"peak after {peak / 1024:.1f} MB, growth {(peak - baseline) / 1024:.2f} MB, "
        f"final {after[-1] / 1024:.1f} MB ({len(samples)} samples)"
    )
    assert injected == int(SOAK_S // PERIOD_S)
    assert [d["wake_word"] for d in detections] == ["loud"] * injected
    # Each detection lies inside its own period, in the burst (stream time, not wall time).
    periods = sorted(int(d["time"] // PERIOD_S) for d in detections)
    assert periods == list(range(injected))
    assert hooks == ["loud"] * injected
    assert peak - baseline <= MAX_GROWTH_KB, f"RSS grew {(peak - baseline) / 1024:.2f} MB: {samples}"
