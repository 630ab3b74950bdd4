"""Debouncer: one fire per bump, patience, refractory, re-arming, smoothing, chunking-independence."""

from __future__ import annotations

import numpy as np
import pytest

from wakeword.detector import Debouncer, Detection
from wakeword.metadata import DetectorSettings

FPS = 100.0
HOP_S = 0.01
WINDOW_S = 0.025


def _debouncer(**overrides) -> Debouncer:
    fields = {"threshold": 0.5, "smoothing_frames": 1, "patience_frames": 3, "refractory_s": 0.5} | overrides
    return Debouncer("espresso", DetectorSettings(**fields), FPS, HOP_S, WINDOW_S)


def _bump(length: int, peak: float = 0.9, before: int = 20, after: int = 20) -> np.ndarray:
    """An utterance-like score bump: rises, holds, falls, with quiet frames around it."""
    ramp = np.linspace(0.1, peak, 5)
    core = np.full(max(length - 10, 0), peak)
    return np.concatenate([np.full(before, 0.05), ramp, core, ramp[::-1], np.full(after, 0.05)])


def test_one_detection_per_utterance_like_bump() -> None:
    probs = _bump(60)
    detections = _debouncer().process(probs)
    assert len(detections) == 1
    above = np.flatnonzero(probs >= 0.5)
    assert detections[0].frame == above[0] + 2  # third consecutive frame at/above threshold


def test_detection_fields() -> None:
    probs = np.array([0.1, 0.6, 0.95, 0.7, 0.99, 0.2])
    (detection,) = _debouncer().process(probs)
    # The score is the maximum of the run up to the firing frame (0.95), not later frames (0.99).
    assert detection == Detection("espresso", pytest.approx(0.95), pytest.approx(3 * HOP_S + WINDOW_S), 3)


def test_score_is_the_running_maximum_of_the_run() -> None:
    probs = np.array([0.9, 0.6, 0.55, 0.2])
    (detection,) = _debouncer().process(probs)
    assert detection.score == pytest.approx(0.9)


def test_time_is_end_of_the_firing_frame() -> None:
    probs = np.concatenate([np.zeros(250), np.ones(5)])
    (detection,) = _debouncer(patience_frames=1).process(probs)
    assert detection.frame == 250
    assert detection.time_s == pytest.approx((250 * 160 + 400) / 16000)


def test_spike_shorter_than_patience_never_fires() -> None:
    debouncer = _debouncer(patience_frames=5, refractory_s=0.0)
    spikes = np.tile(np.concatenate([np.full(4, 0.99), np.zeros(3)]), 30)
    assert debouncer.process(spikes) == []
    assert len(debouncer.process(np.full(5, 0.99))) == 1


def test_patience_counts_consecutive_frames_only() -> None:
    probs = np.array([0.9, 0.9, 0.1, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9])
    detections = _debouncer(patience_frames=3).process(probs)
    assert [d.frame for d in detections] == [8]


def test_refractory_period_suppresses_a_second_bump() -> None:
    # Two bumps 30 frames apart (0.3 s): the second starts inside a 0.5 s refractory.
    probs = np.concatenate([np.zeros(10), np.ones(10), np.zeros(10), np.ones(10), np.zeros(10)])
    assert len(_debouncer(refractory_s=0.5).process(probs)) == 1
    # Without refractory both bumps fire.
    assert [d.frame for d in _debouncer(refractory_s=0.0).process(probs)] == [12, 32]


def test_refractory_ends_and_a_new_run_fires_after_it() -> None:
    probs = np.concatenate([np.zeros(10), np.ones(10), np.zeros(10), np.ones(80), np.zeros(5)])
    detections = _debouncer(refractory_s=0.5).process(probs)
    # First fire at frame 12; the second run (from frame 30) is held until frame 12 + 50.
    assert [d.frame for d in detections] == [12, 62]


def test_a_continuous_run_fires_once_even_after_the_refractory_ends() -> None:
    probs = np.concatenate([np.zeros(5), np.ones(500), np.zeros(5)])
    detections = _debouncer(refractory_s=0.2).process(probs)
    assert len(detections) == 1


def test_rearms_after_the_score_drops_below_threshold() -> None:
    probs = np.concatenate([np.ones(100), [0.2], np.ones(10)])
    assert [d.frame for d in _debouncer(refractory_s=0.0).process(probs)] == [2, 103]


def test_threshold_is_inclusive() -> None:
    assert len(_debouncer(threshold=0.5, patience_frames=2).process(np.full(2, 0.5))) == 1
    assert _debouncer(threshold=0.5, patience_frames=2).process(np.full(2, 0.4999)) == []


def test_smoothing_averages_over_the_window() -> None:
    # Alternating 1.0 / 0.0: raw frames cross 0.5 every other frame (never 3 in a row),
    # but the average of 2 frames is 0.5 every frame from the second on.
    probs = np.tile([1.0, 0.0], 20)
    assert _debouncer(smoothing_frames=1).process(probs) == []
    (detection,) = _debouncer(smoothing_frames=2).process(probs)
    assert detection.frame == 2
    assert detection.score == pytest.approx(1.0)  # frame 0: average of the one frame seen so far


def test_smoothing_delays_and_suppresses_short_spikes() -> None:
    spike = np.concatenate([np.zeros(10), np.full(3, 0.9), np.zeros(10)])
    assert len(_debouncer(smoothing_frames=1, patience_frames=3).process(spike)) == 1
    # Averaged over 7 frames the 3-frame spike peaks at 2.7 / 7 < 0.5.
    assert _debouncer(smoothing_frames=7, patience_frames=3).process(spike) == []
    # Averaged over 5 frames it reaches 0.54 on three frames, later than the raw spike.
    (smoothed,) = _debouncer(smoothing_frames=5, patience_frames=3).process(spike)
    assert smoothed.frame == 14
    assert smoothed.score == pytest.approx(0.54)


def test_smoothed_score_is_exposed() -> None:
    debouncer = _debouncer(smoothing_frames=4)
    debouncer.process(np.array([0.0, 0.0, 1.0, 1.0]))
    assert debouncer.last_score == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_detections_do_not_depend_on_how_probabilities_are_split(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Noisy bumps of random length and spacing, so refractory, patience and re-arming all matter.
    parts = []
    for _ in range(30):
        parts.append(rng.uniform(0, 0.4, rng.integers(1, 60)))
        parts.append(rng.uniform(0.45, 1.0, rng.integers(1, 40)))
    probs = np.concatenate(parts)
    settings = {"smoothing_frames": 3, "patience_frames": 4, "refractory_s": 0.3}
    whole = _debouncer(**settings).process(probs)
    assert len(whole) >= 3  # the stream exercises the rules

    split = _debouncer(**settings)
    cuts = np.sort(rng.choice(np.arange(1, probs.size), size=40, replace=False))
    pieces = [split.process(piece) for piece in np.split(probs, cuts)]
    assert [d for piece in pieces for d in piece] == whole


def test_reset_starts_a_new_stream() -> None:
    debouncer = _debouncer(refractory_s=10.0)
    probs = np.concatenate([np.zeros(5), np.ones(5)])
    first = debouncer.process(probs)
    assert debouncer.process(probs) == []  # refractory
    debouncer.reset()
    assert debouncer.process(probs) == first
    assert debouncer.frames_seen == probs.size


def test_invalid_timing_is_refused() -> None:
    with pytest.raises(ValueError):
        Debouncer("x", DetectorSettings(), 0.0, HOP_S, WINDOW_S)
