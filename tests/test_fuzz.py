"""Fuzzing the two parsers that read operator or third-party bytes: the config loader and the audio reader.

The property is the same for both: any input gives a result or a one-line WakewordError, never
another exception and never a hang. Examples are bounded (max_examples, small inputs) so the file
runs in well under 30 s; a SIGALRM guard turns a hang into a failure that names the input. Every
crash hypothesis found is pinned below as an explicit regression test with the exact input.

tests/test_config.py already fuzzes *parsed* documents (config_from_mapping); here the input is the
raw file: arbitrary text and bytes, and YAML-shaped token soup that reaches the constructor's corners
(timestamps, tags, anchors, huge numbers, deep nesting).
"""

from __future__ import annotations

import contextlib
import io
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wakeword.audio import SAMPLE_RATE, StdinSource, read_audio_file
from wakeword.config import Config, read_config_file
from wakeword.errors import AudioError, ConfigError

#: A hang guard per example: far above what any example takes, far below a CI timeout.
HANG_GUARD_S = 20
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # CI runs the same examples every time; a failure reproduces
)


@contextlib.contextmanager
def hang_guard(what: object) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the body runs longer than HANG_GUARD_S."""

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"hung for {HANG_GUARD_S} s on {what!r:.200}")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(HANG_GUARD_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- config loader


def load_bytes(tmp_path: Path, data: bytes) -> Config | ConfigError:
    """Load ``data`` as a config file; return the Config or the ConfigError (anything else propagates)."""
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        with hang_guard(data):
            return read_config_file(path)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        assert "\n" not in message
        return exc


_TOKENS = st.sampled_from(
    [
        "models:", "audio:", "hooks:", "mqtt:", "service:", "log_level:", "path:", "threshold:",
        "chunk_ms:", "buffer_s:", "device:", "input:", "command:", "timeout_s:", "host:", "port:",
        "tls:", "ca_file:", "status_interval_s:", "bogus:", "\n", "\n  ", "\n    ", "- ", "-", " ",
        "[", "]", "{", "}", ",", ":", "? ", "&a ", "*a", "<<: ", "!!float ", "!!int ", "!!binary ",
        "!!timestamp ", "!!set ", "!!omap ", "!!python/object:os.system ", "!custom ", "'", '"', "|",
        ">", "#", "%YAML 1.1\n", "---\n", "...\n", "~", "null", "true", "yes", "0x1F", "0o17", "1e999",
        ".nan", "-.inf", "2001-12-14", "2001-13-45", "2001-02-29 25:61:61", "12:30:45", "1_000",
        "9" * 5000, "a.onnx", "~nosuchuser/x.onnx", "~/m.onnx", "/dev/null", "INFO", "\t", "\\x00",
        "\ufeff", "é", "\u2028",
    ]
)  # fmt: skip


@FUZZ
@given(st.lists(_TOKENS, max_size=40).map("".join))
def test_yaml_shaped_config_loads_or_is_a_config_error(tmp_path: Path, text: str) -> None:
    result = load_bytes(tmp_path, text.encode("utf-8"))
    assert isinstance(result, (Config, ConfigError))


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_config_text_loads_or_is_a_config_error(tmp_path: Path, text: str) -> None:
    result = load_bytes(tmp_path, text.encode("utf-8", "surrogatepass"))
    assert isinstance(result, (Config, ConfigError))


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_config_bytes_load_or_are_a_config_error(tmp_path: Path, data: bytes) -> None:
    result = load_bytes(tmp_path, data)
    assert isinstance(result, (Config, ConfigError))


# Crashes found while fuzzing (each raised a non-WakewordError before the fix in wakeword/config.py).
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("log_level: 2001-13-45\n", "YAML", id="impossible-timestamp-ValueError"),
        pytest.param("audio:\n  chunk_ms: " + "1" * 5000 + "\n", "YAML", id="5000-digit-int-ValueError"),
        pytest.param("audio: {buffer_s: !!float abc}\n", "YAML", id="bad-explicit-float-ValueError"),
        pytest.param("audio: {chunk_ms: !!int abc}\n", "YAML", id="bad-explicit-int-ValueError"),
        pytest.param("!!int ", "YAML", id="empty-explicit-int-IndexError"),
        pytest.param("a: !!float \n", "YAML", id="empty-explicit-float-IndexError"),
        pytest.param("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested", id="deep-list-RecursionError"),
        pytest.param("x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "nested", id="deep-map-RecursionError"),
        pytest.param("models:\n  - path: ~nosuchuser_zz/x.onnx\n", "models[0].path", id="tilde-RuntimeError"),
    ],
)  # fmt: skip
def test_config_fuzz_regressions_are_one_line_config_errors(tmp_path: Path, text: str, needle: str) -> None:
    result = load_bytes(tmp_path, text.encode())
    assert isinstance(result, ConfigError)
    assert needle in str(result)
    assert len(str(result)) < 400  # one readable line, not a 5000-digit echo


# --------------------------------------------------------------------------- audio reader


def read_or_error(path: Path) -> np.ndarray | AudioError:
    try:
        with hang_guard(path.read_bytes()[:64]):
            audio = read_audio_file(path)
    except AudioError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return exc
    assert isinstance(audio, np.ndarray) and audio.ndim == 1 and audio.dtype == np.float32
    assert audio.size > 0
    assert np.isfinite(audio).all()
    return audio


def _wav_bytes(subtype: str, seconds: float = 0.05, channels: int = 1, rate: int = SAMPLE_RATE) -> bytes:
    rng = np.random.default_rng(3)
    audio = 0.3 * rng.standard_normal((int(seconds * rate), channels)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


_BASES = {
    subtype: _wav_bytes(subtype)
    for subtype in ("PCM_16", "PCM_U8", "PCM_24", "FLOAT", "ULAW", "IMA_ADPCM", "MS_ADPCM", "GSM610")
}
_BASES["STEREO_44K"] = _wav_bytes("PCM_16", channels=2, rate=44100)
# fmt chunk fields of a canonical 44-byte header: (offset, struct format)
_FIELDS = {
    "riff_size": (4, "<I"),
    "fmt_size": (16, "<I"),
    "format_tag": (20, "<H"),
    "channels": (22, "<H"),
    "sample_rate": (24, "<I"),
    "byte_rate": (28, "<I"),
    "block_align": (32, "<H"),
    "bits": (34, "<H"),
    "data_size": (40, "<I"),
}
_CANONICAL = [name for name, data in _BASES.items() if data[36:40] == b"data"]


@st.composite
def mutated_wavs(draw: st.DrawFn) -> bytes:
    """A valid small WAV with header fields set to arbitrary values, bytes flipped, and/or truncated."""
    base = draw(st.sampled_from(sorted(_BASES)))
    data = bytearray(_BASES[base])
    if base in _CANONICAL:
        for name in draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=3, unique=True)):
            offset, fmt = _FIELDS[name]
            limit = 2 ** (8 * struct.calcsize(fmt)) - 1
            value = draw(st.one_of(st.integers(0, limit), st.sampled_from([0, 1, 2, 3, 7, 8, 24, limit])))
            struct.pack_into(fmt, data, offset, value)
    header = min(len(data), 64)
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, header - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@FUZZ
@given(mutated_wavs())
def test_mutated_wav_headers_read_or_are_an_audio_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.wav"
    path.write_bytes(data)
    result = read_or_error(path)
    if isinstance(result, np.ndarray):
        # No decompression bomb: at most 16x resampling of at most ~5 samples per byte (ADPCM, GSM).
        assert result.size <= 100 * max(len(data), SAMPLE_RATE // 10)


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_read_or_are_an_audio_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.bin"
    path.write_bytes(data)
    read_or_error(path)


@FUZZ
@given(st.binary(max_size=3000), st.integers(1, 700))
def test_stdin_source_takes_any_bytes_and_keeps_every_whole_sample(data: bytes, block: int) -> None:
    """Raw stdin: every complete s16le sample arrives in order, a trailing half sample is dropped."""
    source = StdinSource(io.BufferedReader(io.BytesIO(data)), block_s=block / SAMPLE_RATE)
    chunks = []
    with hang_guard(data[:64]), source:
        while (chunk := source.read(1.0)) is not None:
            chunks.append(chunk)
    got = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    whole = len(data) // 2 * 2
    np.testing.assert_array_equal(got, np.frombuffer(data[:whole], dtype="<i2"))
    assert source.odd_byte_dropped == bool(len(data) % 2)


# Crashes/bombs found by the audio fuzzers, pinned with the exact header.
def _header(rate: int, channels: int = 1, bits: int = 16, tag: int = 1, frames: int = 16000) -> bytes:
    block = max(1, channels * bits // 8)
    body = bytes(frames * block)
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks


def test_one_hz_header_is_refused_not_expanded(tmp_path: Path) -> None:
    """Found by the header fuzzer: a 32 KB WAV claiming 1 Hz was resampled into 256 M samples (2 GB, 10 s)."""
    path = tmp_path / "rate-1.wav"
    path.write_bytes(_header(1))
    result = read_or_error(path)
    assert isinstance(result, AudioError) and "sample rate" in str(result)


def test_truncated_gsm610_header_is_an_audio_error(tmp_path: Path) -> None:
    """Found by the header fuzzer: libsndfile opens a GSM610 WAV cut after its header as a
    non-seekable stream, and soundfile's blocks() then raised a bare ValueError."""
    path = tmp_path / "gsm-header-only.wav"
    path.write_bytes(_BASES["GSM610"][:60])
    assert isinstance(read_or_error(path), AudioError)
