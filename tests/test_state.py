"""The hidden state over an endless stream (wakeword.state), on the real shipped model.

What matters to a user: a word is heard the same whatever came minutes before
it (the model was trained on clips of a few seconds from a zero state), and the
probabilities do not depend on how the audio was chunked or which consumer
computed them (the daemon, ``wakeword detect`` and the evaluation that wrote the
model card).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from training.evaluate import stream_probabilities
from wakeword.config import load_config
from wakeword.engine import Detector
from wakeword.errors import ConfigError
from wakeword.frontend import compute_frames
from wakeword.metadata import DetectorSettings, ModelMetadata
from wakeword.model import WakeWordModel
from wakeword.state import RefreshingState, RefreshSchedule, refresh_schedule


@pytest.fixture(scope="module")
def model(shipped_model_path) -> WakeWordModel:
    return WakeWordModel.load(shipped_model_path)


def _audio(seconds: float, seed: int) -> np.ndarray:
    """Speech-like noise: bursts of filtered noise with pauses, so the model's state moves."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    noise = rng.standard_normal(n).astype(np.float32)
    envelope = np.repeat(rng.uniform(0.0, 1.0, n // 1600 + 1) > 0.4, 1600)[:n].astype(np.float32)
    shaped = np.convolve(noise, np.ones(8, dtype=np.float32) / 8, mode="same")
    return (0.2 * shaped * envelope + 0.001 * noise).astype(np.float32)


def _run(state: RefreshingState, frames: np.ndarray, block: int) -> np.ndarray:
    state.reset()
    return np.concatenate([state.run(frames[i : i + block]) for i in range(0, len(frames), block)])


def test_history_is_forgotten_with_refresh_and_not_without(model):
    """Two different 30 s histories, then the same 6 s: with the refresh, the probabilities agree once
    both copies have restarted inside the shared part; with one carried state they do not."""
    fps = model.features.frames_per_second
    shared = compute_frames(_audio(6.0, seed=3), model.features)
    histories = [compute_frames(_audio(30.0, seed=s), model.features) for s in (1, 2)]
    settled = int(4.0 * fps)  # one full period: both copies restarted within the shared frames

    def tail(schedule: RefreshSchedule, history: np.ndarray) -> np.ndarray:
        probs = _run(RefreshingState(model, schedule), np.concatenate([history, shared]), 8)
        return probs[len(history) :]

    on = RefreshSchedule.from_seconds(4.0, 1.0, fps)
    a, b = (tail(on, h) for h in histories)
    np.testing.assert_allclose(a[settled:], b[settled:], atol=1e-6)
    off = RefreshSchedule.from_seconds(0.0, 0.0, fps)
    a, b = (tail(off, h) for h in histories)
    assert np.abs(a[settled:] - b[settled:]).max() > 1e-4, "the test audio does not move the state"


def test_block_size_does_not_change_probabilities(model):
    frames = compute_frames(_audio(13.0, seed=4), model.features)
    state = RefreshingState(model, RefreshSchedule.from_seconds(4.0, 1.0, model.features.frames_per_second))
    whole = _run(state, frames, len(frames))
    for block in (1, 7, 8, 200, 333):
        np.testing.assert_allclose(_run(state, frames, block), whole, atol=1e-5)


def test_disabled_refresh_is_one_carried_state(model):
    frames = compute_frames(_audio(9.0, seed=5), model.features)
    plain, hidden = [], model.initial_state()
    for i in range(0, len(frames), 8):
        probs, hidden = model.run(frames[i : i + 8], hidden)
        plain.append(probs)
    off = RefreshingState(model, RefreshSchedule.from_seconds(0.0, 0.0, model.features.frames_per_second))
    np.testing.assert_array_equal(_run(off, frames, 8), np.concatenate(plain))


def test_before_the_first_restart_the_copies_equal_one_state(model):
    """A clip shorter than half a period is scored exactly as with one fresh state (card figures on
    short clips are unchanged by the refresh)."""
    fps = model.features.frames_per_second
    frames = compute_frames(_audio(1.9, seed=6), model.features)
    on = _run(RefreshingState(model, RefreshSchedule.from_seconds(4.0, 1.0, fps)), frames, 8)
    off = _run(RefreshingState(model, RefreshSchedule.from_seconds(0.0, 0.0, fps)), frames, 8)
    np.testing.assert_array_equal(on, off)


def test_a_restarted_copy_stays_silent_while_warming(model):
    """Right after a restart, the output is the other copy's, not the max with a cold state."""
    fps = model.features.frames_per_second
    schedule = RefreshSchedule.from_seconds(4.0, 1.0, fps)
    frames = compute_frames(_audio(5.0, seed=7), model.features)
    probs = _run(RefreshingState(model, schedule), frames, 8)
    half, warm = schedule.half_period_frames, schedule.warm_frames
    carried = _run(RefreshingState(model, RefreshSchedule(0, 0)), frames, 8)
    # Until copy 0 restarts at 2 * half, copy 0 is the one carried state; copy 1 restarted at `half`
    # only joins after `warm` frames.
    np.testing.assert_array_equal(probs[: half + warm], carried[: half + warm])
    assert (probs[half + warm : 2 * half] >= carried[half + warm : 2 * half]).all()


def test_detector_streaming_equals_evaluation(model):
    """The daemon's Detector, fed odd chunk sizes, scores frame for frame what the evaluation computed."""
    audio = _audio(11.0, seed=8)
    chosen = replace(model.metadata.detector, smoothing_frames=1, state_reset_s=4.0, state_warm_s=1.0)
    expected = stream_probabilities(model, audio, chosen)
    detector = Detector([model], settings={model.name: chosen})
    seen: list[float] = []
    detector.debouncers[model.name].score_sink = lambda first, scores: seen.extend(scores)
    rng = np.random.default_rng(9)
    start = 0
    while start < len(audio):
        size = int(rng.integers(1, 5000))
        detector.process(audio[start : start + size])
        start += size
    detector.flush()
    np.testing.assert_allclose(np.array(seen), expected, atol=1e-5)


def test_schedule_from_settings():
    settings = DetectorSettings(state_reset_s=4.0, state_warm_s=1.0)
    assert refresh_schedule(settings, 100.0) == RefreshSchedule(200, 100)
    assert refresh_schedule(settings, 12.5) == RefreshSchedule(25, 13)
    assert not refresh_schedule(replace(settings, state_reset_s=0.0), 100.0).enabled


def test_models_without_the_keys_get_the_default_refresh(model):
    """Models trained before the refresh existed carry no state keys and run with the default (off)."""
    document = json.loads(model.metadata.to_json())
    for key in ("state_reset_s", "state_warm_s"):
        document["detector"].pop(key, None)
    metadata = ModelMetadata.from_json(json.dumps(document))
    assert (metadata.detector.state_reset_s, metadata.detector.state_warm_s) == (0.0, 1.0)


@pytest.mark.parametrize(("reset", "warm"), [(0.5, 0.1), (4.0, 2.5), (-1.0, 0.0), (4.0, -0.1), (5000.0, 1.0)])
def test_bad_settings_are_refused(reset, warm):
    with pytest.raises(ValueError, match="state_"):
        DetectorSettings(state_reset_s=reset, state_warm_s=warm)


def test_config_keys(tmp_path, shipped_model_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"models:\n  - path: {shipped_model_path}\n    state_reset_s: 6\n    state_warm_s: 2\n")
    config = load_config(path)
    detector = Detector.from_config(config)
    chosen = detector.settings["espresso"]
    assert (chosen.state_reset_s, chosen.state_warm_s) == (6.0, 2.0)

    path.write_text(f"models:\n  - path: {shipped_model_path}\n    state_reset_s: 0.3\n")
    with pytest.raises(ConfigError, match="state_reset_s"):
        load_config(path)

    path.write_text(f"models:\n  - path: {shipped_model_path}\n    state_reset_s: 4\n    state_warm_s: 3\n")
    with pytest.raises(ConfigError, match="state_warm_s"):
        Detector.from_config(load_config(path))
