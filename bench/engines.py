"""Our engine behind the bench's streaming interface, and a factory for every engine.

An engine spec is a small JSON-able dict, so a child process can build the
engine itself: ``{"name": "ours", "model": PATH, "threshold": T}``,
``{"name": "pocketsphinx", "threshold": 1e-20}``, ``{"name": "openwakeword"}``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000


class Engine(Protocol):
    label: str

    def process(self, samples: np.ndarray) -> list[float]:
        """Feed int16 16 kHz samples; return chunk-end times (s since reset) of new detections."""
        ...

    def flush(self) -> list[float]: ...

    def reset(self) -> None: ...


class Ours:
    """wakeword.Detector: the same pipeline ``wakeword listen`` and ``wakeword detect`` run."""

    def __init__(self, model: str, threshold: float | None = None) -> None:
        from wakeword import Detector

        self.detector = Detector([model], threshold=threshold)
        self.label = "wakeword " + ", ".join(
            f"{w} ({s.threshold:g})" for w, s in self.detector.settings.items()
        )
        self._samples = 0
        self.frame_times: list[float] = []  # Detection.time_s (end of the firing frame)

    def reset(self) -> None:
        self.detector.reset()
        self._samples = 0
        self.frame_times = []

    def process(self, samples: np.ndarray) -> list[float]:
        detections = self.detector.process(samples)
        self._samples += samples.shape[0]
        self.frame_times.extend(d.time_s for d in detections)
        return [self._samples / SAMPLE_RATE] * len(detections)

    def flush(self) -> list[float]:
        detections = self.detector.flush()
        self.frame_times.extend(d.time_s for d in detections)
        return [self._samples / SAMPLE_RATE] * len(detections)


def make_engine(spec: dict) -> Engine:
    name = spec["name"]
    if name == "ours":
        return Ours(spec["model"], spec.get("threshold"))
    if name == "pocketsphinx":
        from bench.peers import PocketSphinxKws

        return PocketSphinxKws(spec.get("keyphrase", "espresso"), spec.get("threshold", 1e-20))
    if name == "openwakeword":
        from bench.peers import OpenWakeWord

        return OpenWakeWord(spec.get("model", "alexa_v0.1"), spec.get("threshold", 0.5))
    raise ValueError(f"unknown engine {name!r}")


def engine_title(spec: dict) -> str:
    """Short name for tables."""
    return {"ours": "wakeword (ours)", "pocketsphinx": "PocketSphinx KWS", "openwakeword": "openWakeWord"}[
        spec["name"]
    ]


def run_stream(engine: Engine, samples: np.ndarray, chunk: int) -> list[float]:
    """Reset, feed ``samples`` in ``chunk``-sample pieces, flush; detection times."""
    engine.reset()
    hits: list[float] = []
    for start in range(0, samples.shape[0], chunk):
        hits.extend(engine.process(samples[start : start + chunk]))
    hits.extend(engine.flush())
    return hits
