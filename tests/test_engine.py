"""Detector (the pipeline): chunking-independent detections, several models, overrides, bad input.

Real ONNX sessions throughout. ``loud_model_path`` is a hand-weighted network that
fires on loud audio, which gives real, deterministic detections without a trained model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import wakeword
from wakeword.engine import Detector, Restart, detect_chunks, detect_samples
from wakeword.errors import AudioError, ModelError
from wakeword.features import FeatureConfig
from wakeword.metadata import DetectorSettings
from wakeword.model import MODEL_DIR_ENV, WakeWordModel

SR = 16000


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SR), dtype=np.float32)


def _loud(seconds: float, seed: int) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(round(seconds * SR))).astype(np.float32)


@pytest.fixture(scope="module")
def bumps() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Silence with three loud bursts; returns the audio and each burst's (start_s, end_s)."""
    layout = [(1.0, 0.5), (1.2, 0.2), (0.15, 0.15), (1.0, 0.0)]  # (silence, loud) pairs
    parts, bursts, t = [], [], 0.0
    for i, (quiet, loud) in enumerate(layout):
        parts.append(_silence(quiet))
        t += quiet
        if loud:
            parts.append(_loud(loud, seed=i))
            bursts.append((t, t + loud))
            t += loud
    return np.concatenate(parts), bursts


def _push(detector: Detector, audio: np.ndarray, sizes) -> list:
    detector.reset()
    detections, start = [], 0
    for size in sizes:
        detections.extend(detector.process(audio[start : start + size]))
        start += size
    detections.extend(detector.process(audio[start:]))
    detections.extend(detector.flush())
    return detections


def test_public_api_is_exported() -> None:
    assert wakeword.Detector is Detector
    assert wakeword.WakeWordModel is WakeWordModel
    assert wakeword.Detection.__name__ == "Detection"
    assert isinstance(wakeword.__version__, str)
    assert issubclass(wakeword.errors.ModelError, wakeword.errors.WakewordError)
    assert callable(wakeword.load_config)


def test_loud_bursts_are_detected_once_each_inside_the_burst(loud_model_path: Path, bumps) -> None:
    audio, bursts = bumps
    detector = Detector([loud_model_path])
    detections = detect_samples(audio, detector)
    # The third burst starts 0.15 s after the second ends, inside the model's 0.5 s refractory.
    assert [d.wake_word for d in detections] == ["loud", "loud"]
    settings = detector.settings["loud"]
    delay = (settings.patience_frames + settings.smoothing_frames) * 0.01 + 0.025
    for detection, (start, _end) in zip(detections, [bursts[0], bursts[1]], strict=True):
        assert start < detection.time_s <= start + delay
        assert detection.score > 0.99


@pytest.mark.parametrize("chunking", ["20ms", "1s", "random", "tiny"])
def test_same_detections_whatever_the_chunking(loud_model_path: Path, bumps, chunking: str) -> None:
    audio, _ = bumps
    detector = Detector([loud_model_path])
    whole = _push(detector, audio, [])
    assert len(whole) == 2
    rng = np.random.default_rng(11)
    if chunking == "20ms":
        sizes = [320] * (audio.size // 320)
    elif chunking == "1s":
        sizes = [SR] * (audio.size // SR)
    elif chunking == "random":
        sizes = list(rng.integers(1, 3000, size=audio.size // 1500))
    else:
        sizes = list(rng.integers(1, 160, size=audio.size // 80))
    chunked = _push(detector, audio, sizes)
    assert [(d.wake_word, d.frame, d.time_s) for d in chunked] == [
        (d.wake_word, d.frame, d.time_s) for d in whole
    ]
    assert [d.score for d in chunked] == pytest.approx([d.score for d in whole], abs=1e-5)


def test_int16_and_float_input_detect_the_same(loud_model_path: Path, bumps) -> None:
    audio, _ = bumps
    detector = Detector([loud_model_path])
    floats = detect_samples(audio, detector)
    ints = detect_samples((audio * 32767).clip(-32768, 32767).astype(np.int16), detector)
    assert [d.frame for d in ints] == [d.frame for d in floats]


def test_empty_chunks_are_fine(loud_model_path: Path) -> None:
    detector = Detector([loud_model_path])
    assert detector.process(np.zeros(0, dtype=np.int16)) == []
    assert detector.process(np.zeros((0, 1), dtype=np.float32)) == []
    assert detector.flush() == []


def test_mono_column_input_is_accepted(loud_model_path: Path, bumps) -> None:
    audio, _ = bumps
    detector = Detector([loud_model_path])
    assert [d.frame for d in detect_samples(audio[:, None], detector)] == [
        d.frame for d in detect_samples(audio, detector)
    ]


@pytest.mark.parametrize(
    ("samples", "fragment"),
    [
        (np.zeros((100, 2), dtype=np.float32), "mono"),
        (np.zeros((2, 2, 2), dtype=np.float32), "mono"),
        (np.zeros(100, dtype=np.int32), "int16 or float"),
        (np.zeros(100, dtype=np.uint8), "int16 or float"),
        (np.array([0.0, np.nan], dtype=np.float32), "NaN"),
        ([0.0, 0.1], "numpy array"),
    ],
)
def test_bad_audio_is_a_clear_audio_error(loud_model_path: Path, samples, fragment: str) -> None:
    detector = Detector([loud_model_path])
    with pytest.raises(AudioError, match=fragment):
        detector.process(samples)


def test_model_runs_only_full_steps_until_flush(loud_model_path: Path) -> None:
    detector = Detector([loud_model_path], frames_per_step=8)
    stream = detector._streams[0]
    # Loud audio for exactly 7 frames: nothing runs yet (the step is 8) ...
    assert detector.process(_loud(0.025 + 6 * 0.01, seed=3)) == []
    assert stream.pending_frames == 7
    assert detector.scores() == {"loud": 0.0}
    # ... flush runs them, and the probability of the last frame is now available.
    detector.flush()
    assert stream.pending_frames == 0
    assert detector.scores()["loud"] > 0.99


def test_frames_per_step_does_not_change_detections(loud_model_path: Path, bumps) -> None:
    audio, _ = bumps
    results = {
        step: [
            (d.frame, d.time_s)
            for d in detect_samples(audio, Detector([loud_model_path], frames_per_step=step))
        ]
        for step in (1, 5, 8, 64)
    }
    assert len(results[8]) == 2
    assert results[1] == results[5] == results[8] == results[64]


def test_flush_at_end_of_file_catches_a_burst_in_the_last_frames(loud_model_path: Path) -> None:
    # A burst at the very end: without flush its last frames would stay buffered.
    audio = np.concatenate([_silence(1.0), _loud(0.07, seed=4)])
    detector = Detector([loud_model_path], frames_per_step=64)
    assert detector.process(audio) == []
    assert [d.wake_word for d in detector.flush()] == ["loud"]


def test_reset_clears_state(loud_model_path: Path, bumps) -> None:
    audio, _ = bumps
    detector = Detector([loud_model_path])
    first = _push(detector, audio, [320] * 100)
    detector.process(audio[:12345])  # leave leftover samples, frames and refractory behind
    assert _push(detector, audio, [320] * 100) == first


def test_threshold_override_applies_to_every_model(loud_model_path: Path, tiny_model_path: Path) -> None:
    detector = Detector([loud_model_path, tiny_model_path], threshold=0.9)
    assert {name: s.threshold for name, s in detector.settings.items()} == {"loud": 0.9, "espresso": 0.9}


def test_per_word_settings_replace_model_defaults(
    loud_model_path: Path, tiny_model_path: Path, bumps
) -> None:
    audio, _ = bumps
    model = WakeWordModel.load(loud_model_path)
    no_refractory = replace(model.metadata.detector, refractory_s=0.0)
    detector = Detector([model, tiny_model_path], settings={"loud": no_refractory})
    assert detector.settings["loud"] == no_refractory
    assert detector.settings["espresso"] == WakeWordModel.load(tiny_model_path).metadata.detector
    # Without the refractory the third burst fires too.
    assert len([d for d in detect_samples(audio, detector) if d.wake_word == "loud"]) == 3
    # And a threshold override still wins over per-word settings.
    both = Detector([model], settings={"loud": no_refractory}, threshold=0.7)
    assert both.settings["loud"] == replace(no_refractory, threshold=0.7)


def test_settings_for_an_unknown_wake_word_are_refused(loud_model_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown wake words"):
        Detector([loud_model_path], settings={"nope": DetectorSettings()})


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, -0.1])
def test_threshold_out_of_range_is_refused(loud_model_path: Path, threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        Detector([loud_model_path], threshold=threshold)


def test_two_models_with_the_same_wake_word_are_refused(loud_model_path: Path) -> None:
    with pytest.raises(ModelError, match="more than one model"):
        Detector([loud_model_path, loud_model_path])


def test_models_sharing_a_front_end_share_one_feature_stream(
    loud_model_path: Path, tiny_model_path: Path, bumps
) -> None:
    audio, _ = bumps
    detector = Detector([loud_model_path, tiny_model_path])
    assert detector.wake_words == ["loud", "espresso"]
    assert detector.feature_streams == 1
    # Running alongside another model changes nothing about a model's detections.
    together = [d for d in detect_samples(audio, detector) if d.wake_word == "loud"]
    alone = detect_samples(audio, Detector([loud_model_path]))
    assert together == alone


def test_models_with_different_front_ends_run_separate_feature_streams(
    loud_model_path: Path, loud_network_factory, export_model, tmp_path: Path, bumps
) -> None:
    from wakeword.metadata import ModelMetadata

    features = FeatureConfig(hop_samples=320)  # 20 ms hop: a different frame grid
    settings = DetectorSettings(threshold=0.5, smoothing_frames=1, patience_frames=2, refractory_s=0.5)
    other = export_model(
        loud_network_factory(),
        ModelMetadata(wake_word="coarse", features=features, detector=settings),
        tmp_path / "coarse.onnx",
    )
    audio, bursts = bumps
    detector = Detector([loud_model_path, other])
    assert detector.feature_streams == 2
    detections = detect_samples(audio, detector)
    assert sorted(d.wake_word for d in detections) == ["coarse", "coarse", "loud", "loud"]
    coarse = [d for d in detections if d.wake_word == "coarse"]
    for detection, (start, _) in zip(coarse, bursts, strict=False):
        assert detection.time_s == pytest.approx(detection.frame * 0.02 + 0.025)
        assert start < detection.time_s < start + 0.1
    assert [d.time_s for d in detections] == sorted(d.time_s for d in detections)


def test_detect_chunks_equals_detect_samples(loud_model_path: Path, bumps) -> None:
    audio, _ = bumps
    detector = Detector([loud_model_path])
    chunks = (audio[i : i + 320] for i in range(0, audio.size, 320))
    assert detect_chunks(chunks, detector) == detect_samples(audio, detector)


@pytest.mark.parametrize("chunk", [321, 1280, 16000 * 10])
def test_restarts_replay_a_stream_whose_detector_started_again_after_dropped_audio(
    loud_model_path: Path, bumps, chunk: int
) -> None:
    """What `listen` does at a hole: the detector stops where audio was lost (no flush), skips it,
    and starts afresh, its times on the stream clock. A replay with the restart must do the same,
    whatever chunks the recording arrives in."""
    audio, _ = bumps
    restart = Restart(position=round(2.5 * SR) + 37, unheard=round(0.3 * SR) + 11)
    detector = Detector([loud_model_path])
    detector.reset()
    expected = detector.process(audio[: restart.position - restart.unheard])
    after = detect_samples(audio[restart.position :], detector)
    expected += [replace(d, time_s=d.time_s + restart.position / SR) for d in after]
    assert len(expected) == 2 and expected[1].frame < expected[0].frame  # frames count from the restart
    chunks = (audio[i : i + chunk] for i in range(0, audio.size, chunk))
    assert detect_chunks(chunks, detector, [restart]) == expected
    assert detect_samples(audio, detector, restarts=[restart]) == expected
    assert detect_samples(audio, detector) != expected


def test_a_recording_that_ends_in_a_hole_flushes_nothing_from_before_it(loud_model_path: Path) -> None:
    """The last burst's frames are still buffered below a model step when the audio is lost: live,
    the restart dropped them, so the replay must not flush them into a detection."""
    audio = np.concatenate([_silence(1.0), _loud(0.07, seed=4)])
    detector = Detector([loud_model_path], frames_per_step=64)
    assert len(detect_samples(audio, detector)) == 1  # found by the final flush
    end = Restart(position=audio.size + 800, unheard=800)
    assert detect_samples(audio, detector, restarts=[end]) == []


def test_default_detector_without_a_shipped_model_says_make_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    with pytest.raises(ModelError, match="make model"):
        Detector()


def test_default_detector_loads_the_shipped_model(
    shipped_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(shipped_model_path.parent))
    detector = Detector()
    assert detector.wake_words == ["espresso"]
    assert detect_samples(_silence(2.0), detector) == []


def test_runs_like_compares_model_content_and_settings(
    loud_model_path: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    """What a reload uses to keep the running detector: the same bytes, settings and step."""
    copy = tmp_path / "model.onnx"
    copy.write_bytes(loud_model_path.read_bytes())
    running = Detector([loud_model_path])
    assert running.runs_like(Detector([copy]))  # the same model at another path
    assert not running.runs_like(Detector([loud_model_path], threshold=0.6))
    assert not running.runs_like(Detector([loud_model_path], frames_per_step=3))
    assert not running.runs_like(Detector([loud_model_path, tiny_model_path]))
    copy.write_bytes(tiny_model_path.read_bytes())  # retrained in place
    assert not running.runs_like(Detector([copy]))
