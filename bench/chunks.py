"""Per-chunk processing time at the live chunk size: median and p99 per engine.

For ours one ``Detector.process(chunk)`` call is features + model + detector,
exactly what the live loop does per chunk. Both wall time (``perf_counter``,
disturbed by other users of this shared machine) and the thread's CPU time
(``thread_time``, robust to them) are reported. openWakeWord is fed its own
80 ms unit (1280 samples): other sizes only make it buffer.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import SAMPLE_RATE, BenchSettings, run_child
from bench.engines import engine_title
from bench.peers import OWW_CHUNK


def configured_chunk_s() -> tuple[float, str]:
    """The chunk size the live loop uses: from the config if it names one, else FileSource's block."""
    try:
        from wakeword.config import load_config

        audio = load_config(None).audio
        for name in ("chunk_s", "block_s", "chunk_seconds", "blocksize_s"):
            if getattr(audio, name, None):
                return float(getattr(audio, name)), f"wakeword.config audio.{name}"
        for name in ("chunk_ms", "block_ms"):
            if getattr(audio, name, None):
                return float(getattr(audio, name)) / 1000.0, f"wakeword.config audio.{name}"
    except Exception:  # config module absent or not loadable here: fall back
        pass
    try:
        import inspect

        from wakeword.audio import FileSource

        default = inspect.signature(FileSource.__init__).parameters["block_s"].default
        return float(default), "wakeword.audio.FileSource block_s default"
    except Exception:
        return 0.05, "bench default (50 ms)"


def run(settings: BenchSettings, engines: list[dict], audio: Path) -> dict:
    out: dict = {"chunk_s": settings.chunk_s, "engines": {}}
    for spec in engines:
        chunk = OWW_CHUNK if spec["name"] == "openwakeword" else int(settings.chunk_s * SAMPLE_RATE)
        result = run_child("chunks", {"engine": spec, "audio": str(audio), "chunk_samples": chunk}).result
        result["title"] = engine_title(spec)
        out["engines"][spec["name"]] = result
    return out
