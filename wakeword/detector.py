"""Turn per-frame probabilities into detections: smoothing, threshold, patience, refractory.

Pure logic (no ONNX, no audio), so the rules a user tunes are easy to test and
identical wherever probabilities come from. The state kept between calls is
exactly what the rules need, so splitting the probabilities across
:meth:`Debouncer.process` calls at any point gives the same detections.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wakeword.metadata import DetectorSettings


@dataclass(frozen=True)
class Detection:
    """One wake-word event."""

    wake_word: str
    score: float  # highest smoothed probability of the above-threshold run up to the firing frame
    time_s: float  # stream time at the end of the firing frame's window, seconds from stream start
    frame: int  # index of the firing frame since stream start (or the last reset)


class Debouncer:
    """Smoothing + threshold + patience + refractory for one wake word.

    * the score is the moving average of the last ``smoothing_frames`` probabilities
      (fewer at the very start of a stream);
    * it fires on the ``patience_frames``-th consecutive frame with score >= threshold;
    * after firing, nothing fires for ``refractory_s``;
    * one above-threshold run fires at most once: it re-arms only after the score falls
      below the threshold, so a long utterance (or a stuck-high score) is one detection.
    """

    def __init__(
        self,
        wake_word: str,
        settings: DetectorSettings,
        frames_per_second: float,
        hop_s: float,
        window_s: float,
    ) -> None:
        if frames_per_second <= 0 or hop_s <= 0 or window_s <= 0:
            raise ValueError("frames_per_second, hop_s and window_s must be positive")
        self.wake_word = wake_word
        self.settings = settings
        self.hop_s = hop_s
        self.window_s = window_s
        # Frames that must pass after a detection before the next one may fire.
        self.refractory_frames = math.ceil(settings.refractory_s * frames_per_second - 1e-9)
        #: Called after each :meth:`process` call with (first frame index, smoothed score of every frame),
        #: for consumers that need more than the last score (saved near misses, the live meter). Unset,
        #: it costs nothing; it survives :meth:`reset`.
        self.score_sink: Callable[[int, list[float]], None] | None = None
        #: Called at the start of each :meth:`process` call with (first frame index, the raw model
        #: probabilities), for benchmarks that replay other thresholds. Unset, it costs nothing.
        self.probability_sink: Callable[[int, np.ndarray], None] | None = None
        self.reset()

    def reset(self) -> None:
        """Start of a new stream: forget history, frame count, refractory and arming."""
        self._history: deque[float] = deque(maxlen=self.settings.smoothing_frames)
        self._frame = 0  # index of the next frame
        self._run = 0  # consecutive frames with score >= threshold
        self._run_max = 0.0
        self._armed = True  # False after firing until the score drops below threshold
        self._last_fire: int | None = None
        self.last_score = 0.0

    @property
    def frames_seen(self) -> int:
        return self._frame

    def frame_time(self, frame: int) -> float:
        """Stream time at the end of ``frame``'s window."""
        return frame * self.hop_s + self.window_s

    def process(self, probabilities: np.ndarray) -> list[Detection]:
        """Consume the next consecutive per-frame probabilities (any count); return detections."""
        threshold = self.settings.threshold
        patience = self.settings.patience_frames
        detections: list[Detection] = []
        history = self._history
        sink = self.score_sink
        first_frame = self._frame
        if self.probability_sink is not None:
            self.probability_sink(first_frame, np.asarray(probabilities, dtype=np.float32).reshape(-1))
        scores: list[float] = []
        for prob in np.asarray(probabilities, dtype=np.float64).reshape(-1).tolist():
            frame = self._frame
            self._frame += 1
            history.append(prob)
            score = sum(history) / len(history)
            self.last_score = score
            if sink is not None:
                scores.append(score)
            if score < threshold:
                self._run = 0
                self._run_max = 0.0
                self._armed = True
                continue
            self._run += 1
            self._run_max = max(self._run_max, score)
            if not self._armed or self._run < patience:
                continue
            if self._last_fire is not None and frame - self._last_fire < self.refractory_frames:
                continue
            detections.append(Detection(self.wake_word, self._run_max, self.frame_time(frame), frame))
            self._last_fire = frame
            self._armed = False
        if sink is not None and scores:
            sink(first_frame, scores)
        return detections
