"""A model's hidden state over an endless stream: staggered copies, each restarted in turn.

Why: models are trained on clips a few seconds long, always from a zero state.
A daemon's stream never ends, and a recurrent state carried for minutes drifts
where training never took it: the 411 real "computer" recordings, one after the
other in a 44-minute stream, were detected 92 times with one carried state and
253 times with a fresh state per clip. Restarting a single state every few
seconds would cut through words, so two copies run side by side and restart in
turn, half a period apart. A copy speaks only after it has heard ``warm_s`` of
audio since its restart (or since the stream began); the probability is the
highest among the copies that speak, and at least one always does. Every word
shorter than ``period_s / 2 - warm_s`` is then heard whole by a copy that was
restarted shortly before it, as in training.

Restarts fall on frame counts, not on calls, so the probabilities do not depend
on how the audio was chunked or on ``frames_per_step``. ``period_s == 0`` keeps
one state for the whole stream (the behaviour before this module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wakeword.metadata import DetectorSettings
from wakeword.model import WakeWordModel

#: Copies of the state. Two are enough for one to be warm whenever the other restarts.
COPIES = 2


@dataclass(frozen=True)
class RefreshSchedule:
    """When each copy restarts, in frames of the model's front end."""

    half_period_frames: int  # a restart every this many frames, alternating copies; 0 = never
    warm_frames: int  # frames a restarted copy runs before it speaks

    @classmethod
    def from_seconds(cls, period_s: float, warm_s: float, frames_per_second: float) -> RefreshSchedule:
        if period_s == 0:
            return cls(0, 0)
        half = max(1, round(period_s / COPIES * frames_per_second))
        warm = min(half, math.ceil(warm_s * frames_per_second - 1e-9))
        return cls(half, warm)

    @property
    def enabled(self) -> bool:
        return self.half_period_frames > 0


def refresh_schedule(settings: DetectorSettings, frames_per_second: float) -> RefreshSchedule:
    """The schedule a model runs with under ``settings`` (its own, or a config's override)."""
    return RefreshSchedule.from_seconds(settings.state_reset_s, settings.state_warm_s, frames_per_second)


class RefreshingState:
    """One stream's hidden state(s) for one model: frames in, probabilities out.

    Call :meth:`run` with consecutive frames of one stream (any block sizes);
    :meth:`reset` starts a new stream.
    """

    def __init__(self, model: WakeWordModel, schedule: RefreshSchedule) -> None:
        self.model = model
        self.schedule = schedule
        self.reset()

    def reset(self) -> None:
        copies = COPIES if self.schedule.enabled else 1
        self._states = [self.model.initial_state() for _ in range(copies)]
        # Frame at which each copy last restarted; None = running since the stream began.
        self._restarted_at: list[int | None] = [None] * copies
        self._frame = 0  # stream index of the next frame

    def run(self, frames: np.ndarray) -> np.ndarray:
        """Probabilities ``[T]`` for the next ``T`` frames of the stream."""
        if not self.schedule.enabled:
            probs, self._states[0] = self.model.run(frames, self._states[0])
            self._frame += frames.shape[0]
            return probs
        pieces: list[np.ndarray] = []
        done = 0
        half = self.schedule.half_period_frames
        while done < frames.shape[0]:
            if self._frame > 0 and self._frame % half == 0:
                self._restart((self._frame // half) % COPIES)
            n = min(frames.shape[0] - done, half - self._frame % half)
            pieces.append(self._run_copies(frames[done : done + n]))
            done += n
            self._frame += n
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def _restart(self, copy: int) -> None:
        self._states[copy] = self.model.initial_state()
        self._restarted_at[copy] = self._frame

    def _run_copies(self, frames: np.ndarray) -> np.ndarray:
        """Run every copy over frames that contain no restart; max over the copies that speak."""
        n = frames.shape[0]
        best = np.full(n, -np.inf, dtype=np.float32)
        unrestarted: np.ndarray | None = None  # copies never restarted hold the same state: run it once
        index = np.arange(self._frame, self._frame + n)
        for copy, restarted_at in enumerate(self._restarted_at):
            if restarted_at is None and unrestarted is not None:
                probs, self._states[copy] = unrestarted, self._states[self._restarted_at.index(None)]
            else:
                probs, self._states[copy] = self.model.run(frames, self._states[copy])
                if restarted_at is None:
                    unrestarted = probs
            if restarted_at is None:
                speaks = np.ones(n, dtype=bool)
            else:
                speaks = index - restarted_at >= self.schedule.warm_frames
            best = np.where(speaks, np.maximum(best, probs), best)
        return best
