"""The front end: streaming in any chunking equals the whole clip (log and PCEN); frame counts;
int16 == float; what PCEN is for (a gain change barely moves it)."""

from __future__ import annotations

import numpy as np
import pytest

from wakeword.features import FeatureConfig, StreamingFeatures, compute_features, frame_count, to_float32

CFG = FeatureConfig()
PCEN = FeatureConfig(compression="pcen")


def _clip(seed: int, seconds: float = 1.3) -> np.ndarray:
    """Noise plus a chirp, so every mel band carries signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CFG.sample_rate)) / CFG.sample_rate
    chirp = 0.3 * np.sin(2 * np.pi * (100 + 3000 * t) * t)
    return (chirp + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _stream(samples: np.ndarray, sizes: list[int], config: FeatureConfig = CFG) -> np.ndarray:
    stream = StreamingFeatures(config)
    out, start = [], 0
    for size in sizes:
        out.append(stream.process(samples[start : start + size]))
        start += size
    out.append(stream.process(samples[start:]))
    return np.concatenate(out)


def _random_sizes(rng: np.random.Generator, total: int, low: int, high: int) -> list[int]:
    sizes, used = [], 0
    while used < total:
        sizes.append(int(rng.integers(low, high + 1)))
        used += sizes[-1]
    return sizes


@pytest.mark.parametrize("config", [CFG, PCEN], ids=["log", "pcen"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize(("low", "high"), [(1, 1), (1, 159), (100, 399), (1, 5000)])
def test_streamed_frames_equal_batch_frames_for_random_chunking(
    config: FeatureConfig, seed: int, low: int, high: int
) -> None:
    samples = _clip(seed, seconds=0.4 if high == 1 else 1.3)  # 1-sample chunks: keep the loop short
    batch = compute_features(samples, config)
    sizes = _random_sizes(np.random.default_rng(seed + 100), samples.size, low, high)
    streamed = _stream(samples, sizes, config)
    assert streamed.shape == batch.shape == (frame_count(samples.size, config), config.n_mels)
    assert np.max(np.abs(streamed - batch)) < 1e-5


def test_chunks_shorter_than_a_hop_produce_frames_only_once_a_window_is_full() -> None:
    stream = StreamingFeatures(CFG)
    samples = _clip(7)
    produced = [stream.process(samples[i : i + 50]).shape[0] for i in range(0, CFG.window_samples + 200, 50)]
    # 50-sample chunks: the first frame appears with sample 400, then one per 160 samples.
    assert sum(produced[:7]) == 0
    assert produced[7] == 1
    assert sum(produced) == frame_count(CFG.window_samples + 200, CFG)


@pytest.mark.parametrize(
    ("n_samples", "expected"),
    [(0, 0), (1, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16000, 98), (16000 + 160, 99)],
)
def test_frame_count(n_samples: int, expected: int) -> None:
    assert frame_count(n_samples, CFG) == expected
    assert compute_features(np.zeros(n_samples, dtype=np.float32), CFG).shape == (expected, CFG.n_mels)


def test_int16_and_float_input_give_the_same_frames() -> None:
    rng = np.random.default_rng(5)
    ints = rng.integers(-20000, 20000, size=12345).astype(np.int16)
    floats = ints.astype(np.float32) / 32768.0
    assert np.array_equal(to_float32(ints), floats)
    assert np.max(np.abs(compute_features(ints, CFG) - compute_features(floats, CFG))) < 1e-5


@pytest.mark.parametrize("config", [CFG, PCEN], ids=["log", "pcen"])
def test_reset_forgets_leftover_samples_and_the_running_average(config: FeatureConfig) -> None:
    samples = _clip(9)
    stream = StreamingFeatures(config)
    stream.process(10 * samples[:5000])  # a loud stretch (PCEN's running average) and a partial window
    stream.reset()
    assert np.array_equal(stream.process(samples), compute_features(samples, config))


def test_pcen_is_causal_a_later_sound_does_not_change_earlier_frames() -> None:
    samples = _clip(4)
    louder_end = samples.copy()
    louder_end[10000:] *= 8.0
    first = compute_features(samples, PCEN)
    second = compute_features(louder_end, PCEN)
    unaffected = frame_count(10000, PCEN)  # frames that end before sample 10000
    assert np.array_equal(first[:unaffected], second[:unaffected])
    assert not np.allclose(first[unaffected + 5 :], second[unaffected + 5 :])


def test_pcen_moves_far_less_than_log_mels_when_the_gain_changes() -> None:
    """The reason it exists: 26 dB quieter speech-like audio should look nearly the same after PCEN,
    while log-mels shift by log(0.05**2) = -6 in every band (compared in units of each front end's
    own spread, so the two scales are comparable)."""
    samples = _clip(11, seconds=2.0)
    for config, bound in ((PCEN, 0.5), (CFG, None)):
        loud, quiet = compute_features(samples, config), compute_features(0.05 * samples, config)
        change = np.mean(np.abs(loud - quiet)) / np.std(loud)
        if bound is None:
            assert change > 2.0
        else:
            assert change < bound


def test_pcen_output_is_finite_and_non_negative_even_for_digital_silence() -> None:
    frames = compute_features(np.zeros(4000, dtype=np.int16), PCEN)
    assert frames.dtype == np.float32 and np.all(np.isfinite(frames)) and np.all(frames >= 0)


@pytest.mark.parametrize(
    "bad",
    [{"compression": "mfcc"}, {"pcen_time_constant_s": 0.0}, {"pcen_eps": 0.0}, {"pcen_power": 1.5}],
)
def test_bad_front_end_parameters_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        FeatureConfig(**bad)


def test_a_model_written_before_pcen_existed_still_reads_as_log_mels() -> None:
    old = {k: v for k, v in CFG.to_dict().items() if not k.startswith("pcen") and k != "compression"}
    assert FeatureConfig.from_dict(old) == CFG


def test_silence_gives_the_log_floor_and_output_is_float32() -> None:
    frames = compute_features(np.zeros(1600, dtype=np.int16), CFG)
    assert frames.dtype == np.float32
    assert np.allclose(frames, np.log(CFG.log_floor), atol=1e-4)


def test_other_sample_types_are_refused() -> None:
    with pytest.raises(TypeError):
        compute_features(np.zeros(1000, dtype=np.int32), CFG)
