"""Real capture: PortAudio records a PulseAudio null sink's monitor while paplay plays into it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from tests.speech import espeak_missing, keyword_clip
from tests.virtual_mic import VirtualMic, make_virtual_mic_fixture
from wakeword.audio import MicrophoneSource, list_input_devices

virtual_mic = make_virtual_mic_fixture(scope="module")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    reason = espeak_missing()
    if reason:
        pytest.skip(reason)
    return keyword_clip(
        tmp_path_factory.mktemp("capture") / "espresso.wav", "espresso please", lead_s=0.2, tail_s=0.3
    )


def _record_while_playing(source: MicrophoneSource, mic: VirtualMic, wav: Path, sink: str | None = None):
    """Open the stream, wait for the first callback (an idle null sink starts slowly), play, collect.

    These tests check what arrives, not how soon, so paplay gets a 250 ms buffer instead of 20 ms: a
    starved player puts gaps in the *played* audio, which says nothing about our capture. (One failure,
    correlation 0.54 during a clean-clone `make test` beside other jobs, is the likeliest such case;
    it did not recur in 6 runs beside four CPU-spinning processes, with either buffer.)
    """
    chunks = []
    with source:
        assert source.first_callback.wait(10.0), "no capture callback within 10 s"
        player = mic.play_async(wav, sink, latency_ms=250)
        deadline = time.monotonic() + 30.0
        while player.poll() is None and time.monotonic() < deadline:
            chunks.append(source.read(0.25))
        end = time.monotonic() + 0.8  # the tail still in flight
        while time.monotonic() < end:
            chunks.append(source.read(0.25))
        assert player.wait(5) == 0
    return np.concatenate([c for c in chunks if c is not None])


def _best_correlation(recorded: np.ndarray, clip: np.ndarray) -> float:
    """Peak normalised cross-correlation of the clip against the recording, over all lags."""
    rec = recorded.astype(np.float64) / 32768.0
    ref = clip.astype(np.float64)
    assert rec.size > ref.size, "recorded less audio than the clip"
    n = 1 << int(np.ceil(np.log2(rec.size + ref.size)))
    xcorr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)[: rec.size - ref.size + 1]
    lag = int(np.argmax(np.abs(xcorr)))
    segment = rec[lag : lag + ref.size]
    return float(abs(np.dot(segment, ref)) / (np.linalg.norm(segment) * np.linalg.norm(ref) + 1e-12))


def test_virtual_mic_is_listed_as_an_input_device(virtual_mic: VirtualMic) -> None:
    devices = {d.name: d for d in list_input_devices()}
    assert "pulse" in devices
    assert 16000 in devices["pulse"].supported_rates
    assert devices["pulse"].channels >= 1


def test_captures_played_speech_at_16k_mono(virtual_mic: VirtualMic, clip) -> None:
    source = MicrophoneSource("pulse")
    recorded = _record_while_playing(source, virtual_mic, clip.path)
    assert source.stream_rate == 16000 and source.stream_channels == 1
    assert recorded.dtype == np.int16
    assert _best_correlation(recorded, clip.samples) > 0.9


def test_44k_stereo_device_arrives_resampled_to_16k(virtual_mic: VirtualMic, clip) -> None:
    """A 44.1 kHz stereo sink, recorded as a 44.1 kHz 2-channel stream: we downmix and resample."""
    monitor = virtual_mic.add_sink("vmic44", rate=44100, channels=2)
    virtual_mic.set_default_source(monitor)
    try:
        source = MicrophoneSource("pulse", samplerate=44100, channels=2)
        recorded = _record_while_playing(source, virtual_mic, clip.path, sink="vmic44")
    finally:
        virtual_mic.set_default_source(virtual_mic.source)
    assert source.stream_rate == 44100 and source.stream_channels == 2
    # Correlation with the 16 kHz clip can only be high if the output really is 16 kHz.
    assert _best_correlation(recorded, clip.samples) > 0.9


def test_overrun_drops_oldest_counts_and_logs_but_keeps_going(
    virtual_mic: VirtualMic, caplog: pytest.LogCaptureFixture
) -> None:
    source = MicrophoneSource("pulse", buffer_s=0.1, block_s=0.02)
    with caplog.at_level(logging.WARNING, logger="wakeword.audio"), source:
        assert source.first_callback.wait(10.0)
        deadline = time.monotonic() + 10.0
        while source.buffer.overruns == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # not reading: the callback must overrun, not block
        first = source.read(0.5)
        assert first is not None and first.size <= int(0.1 * 16000)
        callbacks = source.callbacks
        more = source.read(3.0)
        assert more is not None
        assert source.callbacks > callbacks  # capture went on after the overrun
    assert source.overruns > 0
    assert source.dropped_samples > 0
    assert any("overrun" in r.getMessage() for r in caplog.records)


def test_unknown_device_name_is_a_one_line_audio_error(virtual_mic: VirtualMic) -> None:
    from wakeword.errors import AudioError

    with pytest.raises(AudioError) as info:
        MicrophoneSource("no-such-device-xyz").start()
    assert "\n" not in str(info.value)
    assert "wakeword devices" in str(info.value)


def test_input_overflow_flag_is_counted_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PortAudio's input-overflow flag (audio lost before our callback) must reach the log.

    PulseAudio cannot be made to overflow on demand here, so the callback is handed the flag
    PortAudio itself would pass: a real ``sounddevice.CallbackFlags`` with paInputOverflow set.
    """
    import sounddevice as sd

    source = MicrophoneSource("pulse")  # never opened: the callback is driven directly
    block = np.zeros((480, 1), dtype=np.int16)
    overflow = sd.CallbackFlags(0x2)  # paInputOverflow
    assert overflow.input_overflow
    with caplog.at_level(logging.WARNING, logger="wakeword.audio"):
        source._callback(block, 480, None, sd.CallbackFlags())
        source.read(0.0)
        assert source.input_overflows == 0
        assert not any("input overflow" in r.getMessage() for r in caplog.records)
        for _ in range(3):
            source._callback(block, 480, None, overflow)
        source.read(0.0)
        source._callback(block, 480, None, overflow)
        source.read(0.0)  # within the interval: counted, not logged again
    lines = [r.getMessage() for r in caplog.records if "input overflow" in r.getMessage()]
    assert source.input_overflows == 4
    assert len(lines) == 1 and "3 times so far" in lines[0]
