"""Live mode: ``wakeword listen --input FILE`` at real-time pace, CPU% of one core, peak RSS, startup.

The daemon reads the file at microphone pace (FileSource, real time) for at
least 60 s. Startup is the time from spawning the process to the READY=1 it
sends on a NOTIFY_SOCKET we bind (the service sends READY once the model is
loaded and audio flows). CPU% is the child's user+sys from /proc/PID/stat over
the steady part (READY + 1 s to the end); the whole-life figure (imports
included) is given too. Peak RSS is VmHWM from /proc (ru_maxrss
is useless here: Linux keeps the parent's pre-exec peak in it).

Peers have no daemon: they run in ``bench.child live``, a minimal loop with the
same pacing and chunk size that sends READY after loading; ours runs there too,
for a like-for-like figure. All live processes run at the same time (they are
paced by the clock and use little CPU), which saves wall time; startup runs are
sequential and repeated (wall time: noisy on this shared machine).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import REPO_ROOT, SAMPLE_RATE, BenchSettings, child_env, median
from bench.engines import engine_title
from bench.peers import OWW_CHUNK

log = logging.getLogger(__name__)
TICK = os.sysconf("SC_CLK_TCK")
STEADY_SKIP_S = 1.0
ALT_CHUNK_MS = 100


def wakeword_command() -> list[str]:
    script = Path(sys.executable).parent / "wakeword"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from wakeword.cli import main; sys.exit(main())"]


@dataclass
class Watched:
    name: str
    proc: subprocess.Popen
    sock: socket.socket
    sock_path: Path
    spawned: float
    ready: float | None = None
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, cpu_s, hwm_kb)
    usage: object | None = None
    ended: float | None = None
    messages: list[str] = field(default_factory=list)


def _proc_sample(pid: int) -> tuple[float, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)
    hwm = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return cpu, hwm


def _spawn(name: str, argv: list[str], workdir: Path, stdin_payload: dict | None = None) -> Watched:
    sock_path = workdir / f"notify-{name}-{os.getpid()}-{time.monotonic_ns()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.setblocking(False)
    env = child_env({"NOTIFY_SOCKET": str(sock_path), "XDG_CONFIG_HOME": str(workdir / "xdg-empty")})
    log_path = workdir / f"live-{name}.log"
    spawned = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin_payload is not None else subprocess.DEVNULL,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(REPO_ROOT),
    )
    if stdin_payload is not None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(stdin_payload).encode())
        proc.stdin.close()
    return Watched(name, proc, sock, sock_path, spawned)


def _watch(procs: list[Watched], deadline_s: float, stop_at_ready: bool = False) -> None:
    """Poll sockets and /proc until every process ends (or is stopped at READY / the deadline)."""
    end = time.monotonic() + deadline_s
    while any(w.usage is None for w in procs):
        now = time.monotonic()
        for w in procs:
            if w.usage is not None:
                continue
            while True:
                try:
                    message = w.sock.recv(4096).decode(errors="replace")
                except BlockingIOError:
                    break
                w.messages.append(message)
                if "READY=1" in message.split("\n") and w.ready is None:
                    w.ready = now
            sample = _proc_sample(w.proc.pid)
            if sample is not None:
                w.samples.append((now, *sample))
            if (stop_at_ready and w.ready is not None) or now > end:
                _signal(w, signal.SIGTERM)
            pid, status, usage = os.wait4(w.proc.pid, os.WNOHANG)
            if pid == w.proc.pid:
                w.usage, w.ended = usage, now
                w.proc.returncode = os.waitstatus_to_exitcode(status)
        if now > end + 10:
            for w in procs:
                if w.usage is None:
                    _signal(w, signal.SIGKILL)
        time.sleep(0.01 if stop_at_ready else 0.1)  # startup runs: 10 ms resolution
    for w in procs:
        w.sock.close()
        w.sock_path.unlink(missing_ok=True)


def _signal(w: Watched, sig: int) -> None:
    """os.kill, not Popen.send_signal: that polls, reaping the child before our wait4 can read its rusage."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(w.proc.pid, sig)


def _summary(w: Watched) -> dict:
    usage = w.usage
    total_cpu = usage.ru_utime + usage.ru_stime  # type: ignore[union-attr]
    wall = (w.ended or time.monotonic()) - w.spawned
    steady = [s for s in w.samples if w.ready is not None and s[0] >= w.ready + STEADY_SKIP_S]
    steady_pct = None
    steady_s = 0.0
    if len(steady) >= 2:
        steady_s = steady[-1][0] - steady[0][0]
        steady_pct = 100.0 * (steady[-1][1] - steady[0][1]) / steady_s if steady_s > 0 else None
    # VmHWM sampled from /proc while it ran (wait4's ru_maxrss includes the parent's pre-exec peak).
    hwm = max([s[2] for s in w.samples] + [0])
    return {
        "startup_to_ready_s": None if w.ready is None else w.ready - w.spawned,
        "steady_cpu_percent_one_core": steady_pct,
        "steady_window_s": steady_s,
        "whole_life_cpu_percent": 100.0 * total_cpu / wall if wall else None,
        "whole_life_cpu_s": total_cpu,
        "wall_s": wall,
        "peak_rss_mb": hwm / 1024.0,
        "exit_code": w.proc.returncode,
        "ready_received": w.ready is not None,
    }


def _argv(spec: dict, audio: Path, settings: BenchSettings, daemon: bool) -> tuple[list[str], dict | None]:
    if daemon:
        argv = [*wakeword_command(), "listen", "--input", str(audio), "--model", spec["model"]]
        return argv + (["--config", spec["config"]] if spec.get("config") else []), None
    chunk = OWW_CHUNK if spec["name"] == "openwakeword" else int(settings.chunk_s * SAMPLE_RATE)
    payload = {"engine": spec, "audio": str(audio), "chunk_samples": chunk}
    return [sys.executable, "-m", "bench.child", "live"], payload


def run(settings: BenchSettings, engines: list[dict], audio: Path, short_audio: Path, workdir: Path) -> dict:
    """One concurrent live run (ours: CLI and bench loop; peers: bench loop), then the startup runs."""
    runs = []
    for spec in engines:
        if spec["name"] == "ours":
            runs.append(("ours_cli", spec, True))
            # The same daemon with 100 ms capture blocks: fewer wake-ups per second (a config choice).
            config = workdir / "chunk100.yaml"
            config.write_text(f"audio:\n  chunk_ms: {ALT_CHUNK_MS}\n")
            runs.append((f"ours_cli_{ALT_CHUNK_MS}ms", {**spec, "config": str(config)}, True))
        runs.append((spec["name"] + ("_harness" if spec["name"] == "ours" else ""), spec, False))
    watched = []
    for name, spec, daemon in runs:
        argv, payload = _argv(spec, audio, settings, daemon)
        watched.append(_spawn(name, argv, workdir, payload))
    _watch(watched, deadline_s=settings.live_s + 60.0)
    out: dict = {"audio_s": settings.live_s, "chunk_s": settings.chunk_s, "engines": {}}
    for (name, spec, daemon), w in zip(runs, watched, strict=True):
        summary = _summary(w)
        summary["title"] = engine_title(spec) + (" `wakeword listen`" if daemon else " (bench loop)")
        summary["command"] = " ".join(w.proc.args) if daemon else "python -m bench.child live"
        if not daemon:
            summary.update(_harness_result(workdir / f"live-{name}.log"))
        if w.proc.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            summary["log_tail"] = (workdir / f"live-{name}.log").read_text(errors="replace")[-600:]
        out["engines"][name] = summary
    out["startup"] = startup(settings, runs, short_audio, workdir)
    for name, values in out["startup"].items():
        if name not in out["engines"]:
            continue
        out["engines"][name]["startup_to_ready_s_median"] = median([v for v in values if v is not None])
    return out


def _harness_result(log_path: Path) -> dict:
    """The JSON line bench.child live printed (paced per-chunk CPU time, detections)."""
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.startswith("{")]
    if not lines:
        return {}
    result = json.loads(lines[-1])
    return {
        "paced_chunk_thread_cpu_us": result.get("paced_chunk_thread_cpu_us"),
        "detections": result.get("detections"),
    }


def startup(settings: BenchSettings, runs: list, audio: Path, workdir: Path) -> dict[str, list]:
    """Spawn -> READY, one process at a time, repeated; the process is stopped once READY arrives."""
    times: dict[str, list] = {name: [] for name, _, _ in runs if not name.startswith("ours_cli_")}
    for _ in range(settings.startup_repeats):
        for name, spec, daemon in runs:
            if name.startswith("ours_cli_"):
                continue  # the chunk-size variant starts like the default
            argv, payload = _argv(spec, audio, settings, daemon)
            w = _spawn(name + "-startup", argv, workdir, payload)
            _watch([w], deadline_s=30.0, stop_at_ready=True)
            times[name].append(None if w.ready is None else w.ready - w.spawned)
    return times
