"""Audio files and non-device sources: any rate/channels/format in, 16 kHz mono out; clear errors."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wakeword.audio import (
    FileSource,
    MonoResampler,
    StdinSource,
    float_to_int16,
    iter_audio_file,
    open_source,
    parse_device,
    read_audio_file,
)
from wakeword.errors import AudioError

RATE = 16000


def _tones(seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    """A test signal below 4 kHz (survives 8 kHz files): two tones plus a chirp, peak < 0.8."""
    t = np.arange(int(seconds * rate)) / rate
    chirp = np.sin(2 * np.pi * (200 + 1500 * t / seconds) * t)
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1230 * t) + 0.25 * chirp).astype(
        np.float32
    )


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    a, b = a[:n].astype(np.float64), b[:n].astype(np.float64)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000])
def test_any_rate_comes_back_at_16k_with_the_same_content(tmp_path: Path, rate: int) -> None:
    original = _tones(1.0, RATE)
    path = tmp_path / f"tone-{rate}.wav"
    sf.write(path, _tones(1.0, rate), rate, subtype="PCM_16")
    audio = read_audio_file(path)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert abs(audio.size - RATE) <= 2  # one second
    assert _similarity(audio, original) > 0.99


def test_stereo_is_downmixed_by_averaging(tmp_path: Path) -> None:
    left = _tones(1.0, 44100)
    right = 0.5 * left
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100)
    audio = read_audio_file(path)
    expected = 0.75 * _tones(1.0, RATE)
    assert _similarity(audio, expected) > 0.99
    assert np.sqrt(np.mean(audio**2)) == pytest.approx(np.sqrt(np.mean(expected**2)), rel=0.02)


def test_six_channels_are_downmixed(tmp_path: Path) -> None:
    path = tmp_path / "six.wav"
    sf.write(path, np.repeat(_tones(0.5, 48000)[:, None], 6, axis=1), 48000)
    assert _similarity(read_audio_file(path), _tones(0.5, RATE)) > 0.99


@pytest.mark.parametrize(
    ("fmt", "subtype", "tolerance"),
    [
        ("WAV", "PCM_U8", 0.02),
        ("WAV", "PCM_16", 1e-3),
        ("WAV", "PCM_24", 1e-4),
        ("WAV", "PCM_32", 1e-4),
        ("WAV", "FLOAT", 1e-6),
        ("WAV", "DOUBLE", 1e-6),
        ("FLAC", "PCM_24", 1e-4),
        ("OGG", "VORBIS", None),
    ],
)
def test_sample_formats_read_as_float(
    tmp_path: Path, fmt: str, subtype: str, tolerance: float | None
) -> None:
    original = _tones(0.5, RATE)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, original, RATE, format=fmt, subtype=subtype)
    audio = read_audio_file(path)
    assert audio.dtype == np.float32
    if tolerance is None:  # lossy: the content is there, not the exact samples
        assert _similarity(audio, original) > 0.95
    else:
        assert audio.size == original.size
        np.testing.assert_allclose(audio, original, atol=tolerance)


def test_chunked_reading_matches_one_read(tmp_path: Path) -> None:
    """The streaming resampler leaves no seams at block boundaries."""
    path = tmp_path / "long.wav"
    sf.write(path, _tones(3.0, 44100), 44100)
    whole = read_audio_file(path)
    pieces = np.concatenate(list(iter_audio_file(path, block_s=0.037)))
    assert pieces.size == whole.size
    np.testing.assert_allclose(pieces, whole, atol=1e-4)


def _error_for(path: Path) -> str:
    with pytest.raises(AudioError) as info:
        read_audio_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in _error_for(tmp_path / "nope.wav")


def test_directory(tmp_path: Path) -> None:
    assert "directory" in _error_for(tmp_path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert "empty" in _error_for(path)


def test_wav_with_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "zero-length.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), RATE)
    assert path.stat().st_size > 0
    assert "no audio" in _error_for(path)


def test_corrupt_header(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is not a header" + bytes(range(256)))
    assert "not a readable audio file" in _error_for(path)


def test_text_file_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    assert "not a readable audio file" in _error_for(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.wav"
    sf.write(path, _tones(0.1), RATE)
    path.chmod(0)
    _error_for(path)


def test_truncated_wav_reads_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "truncated.wav"
    sf.write(path, _tones(1.0), RATE, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    audio = read_audio_file(path)  # libsndfile reads the samples present
    assert 0 < audio.size <= RATE


def test_float_to_int16_clips_and_rounds() -> None:
    out = float_to_int16(np.array([0.0, 0.5, -1.0, 1.0, 2.0, -3.0], dtype=np.float32))
    assert out.dtype == np.int16
    assert out.tolist() == [0, 16384, -32768, 32767, 32767, -32768]


def test_mono_resampler_streams_int16_from_48k_stereo() -> None:
    stereo = float_to_int16(np.repeat(_tones(1.0, 48000)[:, None], 2, axis=1))
    resampler = MonoResampler(48000, dtype="int16")
    out = [resampler.process(stereo[i : i + 1440]) for i in range(0, stereo.shape[0], 1440)]
    out.append(resampler.flush())
    audio = np.concatenate(out)
    assert audio.dtype == np.int16
    assert abs(audio.size - RATE) <= 2
    assert _similarity(audio.astype(np.float32), _tones(1.0, RATE)) > 0.99


def test_parse_device() -> None:
    assert parse_device("3") == 3
    assert parse_device("pulse") == "pulse"
    assert parse_device(" ") is None
    assert parse_device(None) is None


# --------------------------------------------------------------------------- sources


def _drain(source, limit_s: float = 30.0) -> np.ndarray:
    chunks = []
    deadline = time.monotonic() + limit_s
    with source:
        while time.monotonic() < deadline:
            chunk = source.read(0.25)
            if chunk is None:
                break
            assert chunk.dtype == np.int16
            chunks.append(chunk)
        else:
            pytest.fail("source did not end")
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def test_file_source_fast_yields_the_whole_file_as_int16(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    sf.write(path, _tones(2.5, 44100), 44100)
    got = _drain(FileSource(path, realtime=False))
    np.testing.assert_array_equal(got, float_to_int16(read_audio_file(path)))


def test_file_source_realtime_paces_like_a_microphone_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    sf.write(path, _tones(0.6), RATE, subtype="PCM_16")
    source = FileSource(path, realtime=True, block_s=0.02)
    start = time.monotonic()
    got = _drain(source)
    elapsed = time.monotonic() - start
    np.testing.assert_array_equal(got, float_to_int16(read_audio_file(path)))
    assert source.overruns == 0
    assert elapsed >= 0.5  # lower bound only: real-time pacing cannot finish faster than the audio


def test_file_source_checks_the_file_when_created(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        FileSource(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="no such file"):
        open_source(str(tmp_path / "missing.wav"))


def _pipe_with(data: bytes):
    """A real OS pipe whose writer thread sends ``data`` in uneven pieces, then closes."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as pipe:
            for start in range(0, len(data), 777):  # odd sizes: samples split across writes
                pipe.write(data[start : start + 777])
                time.sleep(0.001)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return os.fdopen(read_fd, "rb"), thread


def test_stdin_source_reads_s16le_from_a_pipe(tmp_path: Path) -> None:
    samples = float_to_int16(_tones(1.0))
    reader, feeder = _pipe_with(samples.astype("<i2").tobytes())
    source = StdinSource(reader)
    got = _drain(source)
    feeder.join()
    np.testing.assert_array_equal(got, samples)
    assert not source.odd_byte_dropped


def test_stdin_source_drops_an_odd_trailing_byte_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    samples = float_to_int16(_tones(0.5))
    reader, feeder = _pipe_with(samples.astype("<i2").tobytes() + b"\x7f")
    source = StdinSource(reader)
    with caplog.at_level(logging.WARNING, logger="wakeword.audio"):
        got = _drain(source)
    feeder.join()
    np.testing.assert_array_equal(got, samples)
    assert source.odd_byte_dropped
    assert any("odd trailing byte" in r.getMessage() for r in caplog.records)


def test_stdin_source_empty_pipe_ends_cleanly() -> None:
    reader, feeder = _pipe_with(b"")
    assert _drain(StdinSource(reader)).size == 0
    feeder.join()


@pytest.mark.parametrize("rate", [1, 100, 1_000_000])
def test_absurd_sample_rates_are_refused(tmp_path: Path, rate: int) -> None:
    """A 1 Hz header would turn a small file into a 16000x larger array: refuse, don't resample."""
    path = tmp_path / f"rate-{rate}.wav"
    sf.write(path, np.zeros(1000, dtype=np.float32), rate, subtype="PCM_16")
    assert "unsupported sample rate" in _error_for(path)


def test_float_file_with_nan_is_an_audio_error(tmp_path: Path) -> None:
    audio = _tones(0.2)
    audio[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, audio, RATE, subtype="FLOAT")
    assert "NaN" in _error_for(path)
