"""One measurement in a fresh process: ``python -m bench.child TASK`` (JSON payload on stdin).

Prints one JSON line on stdout. CPU time is this process's own
(``resource.getrusage``), taken around the work only (imports, model loading
and audio decoding excluded; the parent also records the whole child via wait4).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import numpy as np

from bench.common import SAMPLE_RATE, cpu_seconds, load_audio, peak_rss_mb, percentile
from bench.engines import make_engine, run_stream


def offline(payload: dict) -> dict:
    """CPU seconds to run an engine over a file as fast as it goes (offline detection)."""
    samples = load_audio(payload["audio"])
    spec = payload["engine"]
    engine = make_engine(spec)
    warm = samples[:SAMPLE_RATE]
    if payload.get("stream_chunk_samples"):  # the live loop's chunking, offline (Pi estimate)
        chunk = payload["stream_chunk_samples"]
        run_stream(engine, warm, chunk)
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        detections = len(run_stream(engine, samples, chunk))
    elif spec["name"] == "ours":
        from wakeword.engine import detect_samples

        detect_samples(warm, engine.detector)  # first-call allocations out of the timing
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        detections = len(detect_samples(samples, engine.detector))  # exactly what `wakeword detect` runs
    else:
        run_stream(engine, warm, payload["chunk_samples"])
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        detections = len(run_stream(engine, samples, payload["chunk_samples"]))
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "audio_s": samples.size / SAMPLE_RATE,
        "detections": detections,
        "peak_rss_mb": peak_rss_mb(),
    }


def chunks(payload: dict) -> dict:
    """Per-chunk time of engine.process (features + model + detector for ours) at the live chunk size."""
    samples = load_audio(payload["audio"])
    chunk = payload["chunk_samples"]
    engine = make_engine(payload["engine"])
    engine.reset()
    wall, cpu = [], []
    for i, start in enumerate(range(0, samples.size - chunk + 1, chunk)):
        piece = samples[start : start + chunk]
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        engine.process(piece)
        w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        if i >= payload.get("warmup_chunks", 10):
            wall.append((w1 - w0) / 1e3)
            cpu.append((c1 - c0) / 1e3)
    return {
        "chunks": len(wall),
        "chunk_ms": 1000 * chunk / SAMPLE_RATE,
        "wall_us": _stats(wall),
        "thread_cpu_us": _stats(cpu),
    }


def _stats(values: list[float]) -> dict:
    return {
        "median": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def accuracy(payload: dict) -> dict:
    """Stream each clip (reset between clips) in live-size chunks; detection times per clip.

    For our engine it also writes each clip's per-frame probabilities (the same
    features and model calls in ``frames_per_step`` steps as the Detector), so
    the threshold sweep can replay them through the library's Debouncer.
    """
    from bench.dataset import Clip

    spec = payload["engine"]
    engine = make_engine(spec)
    chunk = payload["chunk_samples"]
    clips = [Clip(**c) for c in payload["clips"]]
    prob_stream = (
        _ProbabilityStream(spec["model"]) if spec["name"] == "ours" and payload.get("probs_out") else None
    )
    results, probs = [], {}
    cpu0 = cpu_seconds()
    audio_s = 0.0
    for n, clip in enumerate(clips):
        samples = clip.stream_samples()
        audio_s += samples.size / SAMPLE_RATE
        hits = run_stream(engine, samples, chunk)
        entry = {"hits": hits, "samples": int(samples.size)}
        if spec["name"] == "ours":
            entry["frame_times"] = list(engine.frame_times)
        if prob_stream is not None:
            probs[f"c{n}"] = prob_stream.run(samples)
        results.append(entry)
    if prob_stream is not None:
        np.savez_compressed(payload["probs_out"], **probs)
    return {"clips": results, "cpu_s": cpu_seconds() - cpu0, "audio_s": audio_s}


class _ProbabilityStream:
    """The library's feature extractor and model, run as the Detector runs them, keeping probabilities."""

    def __init__(self, model_path: str) -> None:
        from wakeword import frontend
        from wakeword.model import WakeWordModel
        from wakeword.state import RefreshingState, refresh_schedule

        self.model = WakeWordModel.load(model_path)
        self.features = frontend.streaming(self.model.features)
        self.step = self.model.metadata.frames_per_step
        schedule = refresh_schedule(self.model.metadata.detector, self.model.features.frames_per_second)
        self.state = RefreshingState(self.model, schedule)

    def run(self, samples: np.ndarray) -> np.ndarray:
        self.features.reset()
        self.state.reset()
        frames = self.features.process(samples)
        out = []
        for start in range(0, frames.shape[0], self.step):
            out.append(self.state.run(frames[start : start + self.step]))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def live(payload: dict) -> dict:
    """A minimal live loop for an engine: file chunks at real-time pace, READY via NOTIFY_SOCKET.

    Used for the peers (which have no daemon) and for ours as a like-for-like
    check next to the real ``wakeword listen``.
    """
    samples = load_audio(payload["audio"])
    chunk = payload["chunk_samples"]
    engine = make_engine(payload["engine"])
    engine.reset()
    _notify("READY=1")
    detections = 0
    per_chunk = []
    t0 = time.monotonic()
    for n, start in enumerate(range(0, samples.size, chunk)):
        due = t0 + (start + chunk) / SAMPLE_RATE
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        c0 = time.thread_time_ns()
        detections += len(engine.process(samples[start : start + chunk]))
        per_chunk.append((time.thread_time_ns() - c0) / 1e3)
        if n == 0:
            _notify("STATUS=first chunk processed")
    return {
        "detections": detections,
        "audio_s": samples.size / SAMPLE_RATE,
        "peak_rss_mb": peak_rss_mb(),
        "paced_chunk_thread_cpu_us": _stats(per_chunk[10:]),
    }


def _notify(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


TASKS = {"offline": offline, "chunks": chunks, "accuracy": accuracy, "live": live}


def main() -> int:
    task = sys.argv[1]
    payload = json.loads(sys.stdin.read() or "{}")
    result = TASKS[task](payload)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
