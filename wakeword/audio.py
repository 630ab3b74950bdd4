"""Audio in: files, stdin and microphones, always delivered as 16 kHz mono.

Everything downstream (features, models) assumes 16 kHz mono, so this module is
the one place that knows about device rates, channel counts and sample formats.
Resampling uses soxr's streaming resampler so chunk boundaries leave no seams.

Sources share one small interface (:class:`AudioSource`): ``start()``, then
``read(timeout)`` returns int16 chunks (empty when nothing arrived yet, ``None``
once the stream has ended), then ``stop()``. A microphone and a real-time file
behave like live audio: a producer writes into a :class:`RingBuffer` that drops
the oldest samples if the reader falls behind. Fast file reads and stdin never
drop audio.

``sounddevice`` is imported lazily: it needs the PortAudio C library, and a
daemon that only reads files or stdin should not need a sound system.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from wakeword.errors import AudioError
from wakeword.ringbuffer import RingBuffer

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
NO_INPUT_DEVICE = "no input device found; use --input FILE or --input - (see `wakeword devices`)"
PROBE_RATES = (16000, 44100, 48000)
#: File sample rates accepted: telephone audio up to studio rates. Anything outside is a broken or
#: hostile header (a 1 Hz header would make resampling to 16 kHz a 16000x decompression bomb).
MIN_FILE_RATE = 4000
MAX_FILE_RATE = 384_000
_MAX_BLOCK_VALUES = 1 << 21  # samples (all channels) per read, so a many-channel header cannot balloon
_OVERRUN_LOG_INTERVAL_S = 5.0


# --------------------------------------------------------------------------- conversions


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16, clipped (the inverse of features.to_float32)."""
    scaled = np.clip(np.asarray(samples, dtype=np.float32) * 32768.0, -32768.0, 32767.0)
    return np.rint(scaled).astype(np.int16)


class MonoResampler:
    """Downmix and resample a stream to 16 kHz mono, chunk by chunk, without seams."""

    def __init__(self, in_rate: float, dtype: str = "float32") -> None:
        self.in_rate = float(in_rate)
        self.dtype = np.dtype(dtype)
        self._stream = (
            None
            if self.in_rate == SAMPLE_RATE
            else soxr.ResampleStream(self.in_rate, SAMPLE_RATE, 1, dtype=self.dtype.name, quality="HQ")
        )

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """``block`` is [frames] or [frames, channels] of ``dtype``; returns 1-D 16 kHz ``dtype``."""
        block = np.asarray(block)
        if block.ndim == 2:
            if block.shape[1] == 1:
                block = block[:, 0]
            else:
                block = block.mean(axis=1, dtype=np.float32)
                if self.dtype == np.int16:
                    block = np.rint(block)
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if self._stream is None:
            return block
        return self._stream.resample_chunk(block, last=last)

    def flush(self) -> np.ndarray:
        return self.process(np.zeros(0, dtype=self.dtype), last=True)


# --------------------------------------------------------------------------- files


def _open_sound_file(path: str | Path) -> sf.SoundFile:
    """Open an audio file or raise a one-line AudioError that says what is wrong with it."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{path}: no such file")
    if p.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if p.is_file() and size == 0:
        raise AudioError(f"{path}: file is empty")
    try:
        handle = sf.SoundFile(str(p))
    except sf.LibsndfileError as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc.error_string})") from exc
    except PermissionError as exc:
        raise AudioError(f"{path}: permission denied") from exc
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    if handle.frames == 0 or handle.channels <= 0:
        handle.close()
        raise AudioError(f"{path}: contains no audio (zero length)")
    if not MIN_FILE_RATE <= handle.samplerate <= MAX_FILE_RATE:
        rate = handle.samplerate
        handle.close()
        raise AudioError(
            f"{path}: unsupported sample rate {rate} Hz (expected {MIN_FILE_RATE}-{MAX_FILE_RATE} Hz)"
        )
    return handle


def iter_audio_file(path: str | Path, block_s: float = 10.0) -> Iterator[np.ndarray]:
    """Yield the file as float32 16 kHz mono blocks, so hour-long files need little memory.

    The file is opened (and checked) when the first block is requested; see
    :func:`open_audio_file` to check eagerly.
    """
    yield from _iter_open_file(_open_sound_file(path), path, block_s)


def _iter_open_file(handle: sf.SoundFile, path: str | Path, block_s: float) -> Iterator[np.ndarray]:
    with handle:
        resampler = MonoResampler(handle.samplerate)
        blocksize = max(1, min(int(handle.samplerate * block_s), _MAX_BLOCK_VALUES // handle.channels))
        try:
            for block in handle.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
                out = _finite(resampler.process(block), path)
                if out.size:
                    yield out
            tail = _finite(resampler.flush(), path)
        except sf.LibsndfileError as exc:
            raise AudioError(f"{path}: audio data is corrupt ({exc.error_string})") from exc
        except (RuntimeError, OSError, ValueError) as exc:  # soundfile raises bare ValueErrors too
            raise AudioError(f"{path}: audio data is corrupt ({exc})") from exc
        if tail.size:
            yield tail


def _finite(samples: np.ndarray, path: str | Path) -> np.ndarray:
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return samples


def open_audio_file(path: str | Path, block_s: float = 10.0) -> Iterator[np.ndarray]:
    """Like :func:`iter_audio_file`, but raises AudioError for a bad file right away."""
    return _iter_open_file(_open_sound_file(path), path, block_s)


def read_audio_file(path: str | Path) -> np.ndarray:
    """The whole file as float32 in [-1, 1], 16 kHz mono, whatever its rate, channels or format."""
    blocks = list(open_audio_file(path))
    if not blocks:
        raise AudioError(f"{path}: contains no audio (zero length)")
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


# --------------------------------------------------------------------------- sources


class _ThrottledCount:
    """The last logged value of a growing counter, so a warning about it repeats at most once per
    ``_OVERRUN_LOG_INTERVAL_S`` however often the audio loop checks it."""

    def __init__(self) -> None:
        self.logged = 0
        self._at = -math.inf

    def due(self, value: int) -> int | None:
        """The previously logged value if ``value`` moved and the interval passed (``value`` then
        counts as logged); None when nothing should be logged now."""
        if value == self.logged:
            return None
        now = time.monotonic()
        if now - self._at < _OVERRUN_LOG_INTERVAL_S:
            return None
        previous, self.logged, self._at = self.logged, value, now
        return previous


class AudioSource:
    """16 kHz mono int16 chunks from somewhere; see the module docstring for the protocol."""

    sample_rate = SAMPLE_RATE
    live = True  # drops audio rather than slowing the producer when the reader falls behind
    #: 16 kHz samples dropped right before the chunk the last read() returned (0: contiguous).
    last_gap = 0

    def __init__(self, description: str) -> None:
        self.description = description
        self._dropped_warning = _ThrottledCount()

    @property
    def overruns(self) -> int:
        return 0

    @property
    def dropped_samples(self) -> int:
        return 0

    def start(self) -> None:
        """Begin producing audio (opens devices, starts threads)."""

    def read(self, timeout: float = 0.25, min_samples: int | None = None) -> np.ndarray | None:
        """Next int16 chunk; empty if nothing arrived within ``timeout``; None at end of stream.

        A live source waits for ``min_samples`` (default: one capture block) before it
        returns, unless the timeout comes first: reading in bigger pieces means fewer
        wake-ups, which is most of the CPU a live loop costs.
        """
        raise NotImplementedError

    def stop(self) -> None:
        """Stop producing and release the device; safe to call twice."""

    def _log_overruns(self) -> None:
        """Warn about dropped audio, at most once per interval (called from the reader thread)."""
        dropped = self.dropped_samples
        previous = self._dropped_warning.due(dropped)
        if previous is None:
            return
        log.warning(
            "audio overrun: processing fell behind, dropped %.2f s of the oldest audio (%d overruns so far)",
            (dropped - previous) / self.sample_rate,
            self.overruns,
        )

    def __enter__(self) -> AudioSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _BufferedSource(AudioSource):
    """A source whose producer (callback or thread) writes int16 into a RingBuffer."""

    def __init__(self, description: str, buffer_s: float, block_samples: int) -> None:
        super().__init__(description)
        self.buffer = RingBuffer(max(int(buffer_s * SAMPLE_RATE), 2 * block_samples))
        self._block = block_samples
        self._error: BaseException | None = None
        self._gap_seen = 0

    @property
    def overruns(self) -> int:
        return self.buffer.overruns

    @property
    def dropped_samples(self) -> int:
        return self.buffer.dropped_samples

    def _take_gap(self, rate: float = SAMPLE_RATE) -> int:
        """Samples dropped since the previous read, all of them before the chunk just read."""
        dropped = self.buffer.dropped_before_last_read
        gap, self._gap_seen = dropped - self._gap_seen, dropped
        self.last_gap = int(round(gap * SAMPLE_RATE / rate))
        return self.last_gap

    def read(self, timeout: float = 0.25, min_samples: int | None = None) -> np.ndarray | None:
        self.buffer.wait(min_samples or self._block, timeout)
        chunk = self.buffer.read()
        self._take_gap()
        self._log_overruns()
        if chunk.size == 0 and self.buffer.closed:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None
        return chunk


class FileSource(_BufferedSource):
    """An audio file. Real time (default) paces it like a microphone; otherwise as fast as read."""

    def __init__(
        self, path: str | Path, realtime: bool = True, block_s: float = 0.05, buffer_s: float = 10.0
    ) -> None:
        block = max(1, int(block_s * SAMPLE_RATE))
        super().__init__(str(path), buffer_s, block)
        self.path = path
        self.realtime = realtime
        self.live = realtime
        self._blocks = open_audio_file(path, block_s=max(block_s, 1.0))  # checks the file now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.realtime and self._thread is None:
            self._thread = threading.Thread(target=self._produce, name="wakeword-file", daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        """Write blocks at the pace they would arrive from a microphone."""
        t0 = time.monotonic()
        sent = 0
        try:
            for block in self._blocks:
                pcm = float_to_int16(block)
                for pos in range(0, pcm.size, self._block):
                    piece = pcm[pos : pos + self._block]
                    due = t0 + (sent + piece.size) / SAMPLE_RATE
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                    self.buffer.write(piece)
                    sent += piece.size
        except AudioError as exc:
            self._error = exc
        except Exception as exc:  # reported by the reader, not lost in a thread
            self._error = AudioError(f"{self.path}: {exc}")
        finally:
            self.buffer.close()

    def read(self, timeout: float = 0.25, min_samples: int | None = None) -> np.ndarray | None:
        if self.realtime:
            return super().read(timeout, min_samples)
        if self._stop.is_set():
            return None
        block = next(self._blocks, None)
        return None if block is None else float_to_int16(block)

    def stop(self) -> None:
        self._stop.set()
        self.buffer.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        if thread is None or not thread.is_alive():
            self._blocks.close()


class StdinSource(_BufferedSource):
    """Raw signed 16-bit little-endian 16 kHz mono PCM from a pipe (e.g. ``arecord -f S16_LE ...``).

    A reader thread copies the pipe into the ring buffer without loss: a pipe already
    pushes back on its writer, and ``arecord`` handles its own overruns.
    """

    live = False

    def __init__(self, stream: BinaryIO | None = None, block_s: float = 0.05, buffer_s: float = 10.0) -> None:
        block = max(1, int(block_s * SAMPLE_RATE))
        super().__init__("stdin (s16le 16 kHz mono)", buffer_s, block)
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.odd_byte_dropped = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._produce, name="wakeword-stdin", daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        carry = b""
        read = getattr(self._stream, "read1", self._stream.read)
        try:
            while not self._stop.is_set():
                data = read(self._block * 2)
                if not data:
                    break
                if carry:
                    data = carry + data
                    carry = b""
                if len(data) % 2:
                    carry, data = data[-1:], data[:-1]
                if data:
                    samples = np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
                    if not self.buffer.write_waiting(samples, self._stop):
                        return
            if carry:
                self.odd_byte_dropped = True
                log.warning("stdin ended with an odd trailing byte (half a sample); dropped it")
        except (OSError, ValueError) as exc:
            self._error = AudioError(f"reading stdin failed: {exc}")
        finally:
            self.buffer.close()

    def stop(self) -> None:
        self._stop.set()
        self.buffer.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=0.5)  # may still be blocked in read(); it is a daemon thread


# --------------------------------------------------------------------------- microphones


def import_sounddevice() -> ModuleType:
    """sounddevice, or a one-line AudioError when PortAudio is missing."""
    try:
        import sounddevice
    except (OSError, ImportError) as exc:
        log.debug("import sounddevice failed: %s", exc)
        raise AudioError(f"{NO_INPUT_DEVICE} (PortAudio is not available: {exc})") from exc
    return sounddevice


def parse_device(device: str | int | None) -> str | int | None:
    """A --device value: an index if it is all digits, otherwise a (sub)string of the name."""
    if isinstance(device, str):
        device = device.strip()
        if device == "":
            return None
        if device.isdigit():
            return int(device)
    return device


@dataclass(frozen=True)
class InputDevice:
    """One capture device as PortAudio sees it."""

    index: int
    name: str
    channels: int
    default_samplerate: float
    supported_rates: tuple[int, ...]
    hostapi: str
    is_default: bool


def _supports(sd: ModuleType, device: int, rate: int, channels: int) -> bool:
    for ch in dict.fromkeys((1, channels)):
        try:
            sd.check_input_settings(device=device, samplerate=rate, channels=ch, dtype="int16")
            return True
        except Exception:  # PortAudio says no in several ways
            continue
    return False


def list_input_devices() -> list[InputDevice]:
    """Every device with input channels, probing which of 16/44.1/48 kHz each accepts."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except Exception as exc:  # PortAudioError or an ALSA failure
        raise AudioError(f"{NO_INPUT_DEVICE} ({exc})") from exc
    try:
        default_index = int(sd.query_devices(kind="input")["index"])
    except Exception:  # no default input
        default_index = -1
    found = []
    for info in devices:
        channels = int(info["max_input_channels"])
        if channels <= 0:
            continue
        index = int(info["index"])
        rates = tuple(r for r in PROBE_RATES if _supports(sd, index, r, channels))
        found.append(
            InputDevice(
                index=index,
                name=str(info["name"]),
                channels=channels,
                default_samplerate=float(info["default_samplerate"]),
                supported_rates=rates,
                hostapi=str(hostapis[info["hostapi"]]["name"]),
                is_default=index == default_index,
            )
        )
    return found


RECONNECT_FIRST_S = 0.25
#: Longest wait between two attempts to reopen a lost input: a device that comes back is
#: capturing again within about this long.
RECONNECT_MAX_S = 2.0


def reconnect_delays(first_s: float = RECONNECT_FIRST_S, max_s: float = RECONNECT_MAX_S) -> Iterator[float]:
    """Seconds to wait before each reopen attempt: doubling from ``first_s``, then ``max_s`` forever."""
    delay = first_s
    while True:
        yield min(delay, max_s)
        delay *= 2


class MicrophoneSource(_BufferedSource):
    """Live capture through PortAudio.

    The stream callback only downmixes to mono int16 at the device rate and writes
    into the ring buffer; resampling to 16 kHz happens on the reader's thread, so the
    callback does a bounded, tiny amount of work. The stream opens at 16 kHz mono
    when the device accepts it, else at the device's default rate and channel count.
    ``samplerate``/``channels`` force the stream format (tests use this).

    If the stream dies (device unplugged, sound server gone), ``reconnect`` (default)
    logs one warning, keeps returning empty chunks, and reopens the device with
    backoff (:func:`reconnect_delays`); the time it was away is reported as a gap
    (``last_gap``), so stream times stay on the wall clock. Without ``reconnect`` the
    next read raises AudioError.
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        block_s: float = 0.03,
        buffer_s: float = 5.0,
        samplerate: int | None = None,
        channels: int | None = None,
        reconnect: bool = True,
    ) -> None:
        self.device = parse_device(device)
        super().__init__(
            f"microphone {self.device!r}" if self.device is not None else "default microphone",
            buffer_s,
            max(1, int(block_s * SAMPLE_RATE)),
        )
        self.block_s = block_s
        self.reconnect = reconnect
        self._force_rate = samplerate
        self._force_channels = channels
        self.stream_rate: int | None = None
        self.stream_channels: int | None = None
        self._stream = None
        self._generation = 0  # which stream a finished-callback belongs to
        self._resampler: MonoResampler | None = None
        self._stopping = False
        self.callbacks = 0
        self.first_callback = threading.Event()
        self.input_overflows = 0  # PortAudio-level overflows (the OS buffer, before ours)
        self._overflow_warning = _ThrottledCount()
        self.lost_reason: str | None = None  # set while the input is lost
        self.reconnects = 0
        self._lost = threading.Event()
        self._lost_at = 0.0
        self._next_attempt = 0.0
        self._delays: Iterator[float] | None = None
        self._pending_gap = 0  # the time the input was away, reported with the next chunk

    # -- the PortAudio thread ------------------------------------------------------------
    def _callback(self, indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        if status and getattr(status, "input_overflow", False):
            self.input_overflows += 1
        if indata.shape[1] == 1:
            self.buffer.write(indata[:, 0])
        else:
            self.buffer.write(indata.mean(axis=1, dtype=np.float32).astype(np.int16))
        self.callbacks += 1
        if self.callbacks == 1:
            self.first_callback.set()

    def _finished(self, generation: int) -> None:
        if self._stopping or generation != self._generation:
            return  # we closed it ourselves
        if self.reconnect:
            self._lost.set()
            self.buffer.wake()
        else:
            self._error = AudioError(f"{self.description}: the input stream stopped unexpectedly")
            self.buffer.close()

    # -- the reader's thread -------------------------------------------------------------
    def _choose_format(self, sd: ModuleType) -> tuple[int, int]:
        if self._force_rate or self._force_channels:
            return int(self._force_rate or SAMPLE_RATE), int(self._force_channels or 1)
        try:
            sd.check_input_settings(device=self.device, samplerate=SAMPLE_RATE, channels=1, dtype="int16")
            return SAMPLE_RATE, 1
        except Exception as exc:
            log.debug("16 kHz mono refused by %s: %s", self.description, exc)
        info = sd.query_devices(self.device, "input")
        rate = int(round(float(info["default_samplerate"])))
        try:
            sd.check_input_settings(device=self.device, samplerate=rate, channels=1, dtype="int16")
            return rate, 1
        except Exception:
            return rate, max(1, int(info["max_input_channels"]))

    def _open(self, sd: ModuleType) -> tuple[int, int]:
        """Open and start a stream; raises AudioError with a one-line reason."""
        try:
            if not any(int(d["max_input_channels"]) > 0 for d in sd.query_devices()):
                raise AudioError(NO_INPUT_DEVICE)
            rate, channels = self._choose_format(sd)
            self._generation += 1
            generation = self._generation
            self._stream = sd.InputStream(
                samplerate=rate,
                blocksize=max(1, int(rate * self.block_s)),
                device=self.device,
                channels=channels,
                dtype="int16",
                callback=self._callback,
                finished_callback=lambda: self._finished(generation),
            )
            self._stream.start()
        except AudioError:
            raise
        except ValueError as exc:  # sounddevice: no device matching the name / bad index
            self._close_stream()
            raise AudioError(f"{exc}; see `wakeword devices`") from exc
        except Exception as exc:  # PortAudioError and friends
            self._close_stream()
            if self.device is None:
                raise AudioError(f"{NO_INPUT_DEVICE} ({exc})") from exc
            raise AudioError(
                f"cannot open input device {self.device!r}: {exc}; see `wakeword devices`"
            ) from exc
        self.stream_rate, self.stream_channels = rate, channels
        self._resampler = MonoResampler(rate, dtype="int16") if rate != SAMPLE_RATE else None
        return rate, channels

    def start(self) -> None:
        if self._stream is not None:
            return
        rate, channels = self._open(import_sounddevice())
        log.info(
            "capturing from %s at %d Hz, %d channel(s)%s",
            self.description,
            rate,
            channels,
            "" if rate == SAMPLE_RATE and channels == 1 else " (converted to 16 kHz mono)",
        )

    def _handle_loss(self, timeout: float) -> np.ndarray:
        """While the input is lost: try to reopen it when the backoff says so; return no audio."""
        now = time.monotonic()
        if self.lost_reason is None:
            self.lost_reason = "the input stream stopped"
            self._lost_at = now
            self._delays = reconnect_delays()
            self._next_attempt = now + next(self._delays)
            log.warning(
                "audio input lost: %s: %s; retrying every %.0f s at most",
                self.description,
                self.lost_reason,
                RECONNECT_MAX_S,
            )
        if now < self._next_attempt:
            time.sleep(min(timeout, self._next_attempt - now))
            return np.zeros(0, dtype=np.int16)
        self._close_stream()
        sd = import_sounddevice()
        try:
            sd._terminate()  # PortAudio lists devices once: re-list them (the device may be back
            sd._initialize()  # under another index)
            self._open(sd)
        except AudioError as exc:
            log.debug("reopening %s failed: %s", self.description, exc)
            assert self._delays is not None
            self._next_attempt = time.monotonic() + next(self._delays)
            return np.zeros(0, dtype=np.int16)
        away_s = time.monotonic() - self._lost_at
        self._lost.clear()
        self.lost_reason = None
        self.reconnects += 1
        self._gap_seen = self.buffer.dropped_before_last_read
        self._pending_gap = int(away_s * SAMPLE_RATE)
        log.info("capturing again from %s after %.1f s", self.description, away_s)
        return np.zeros(0, dtype=np.int16)

    def _log_input_overflows(self) -> None:
        """Warn when the sound system dropped audio before our callback saw it (a starved machine:
        a keyword said then can be missed, so it must not pass silently); rate-limited like overruns."""
        count = self.input_overflows
        if self._overflow_warning.due(count) is None:
            return
        log.warning(
            "audio input overflow: %s dropped audio before wakeword received it "
            "(%d times so far); the machine may be overloaded",
            self.description,
            count,
        )

    def read(self, timeout: float = 0.25, min_samples: int | None = None) -> np.ndarray | None:
        self._log_input_overflows()
        if self._lost.is_set() and len(self.buffer) == 0 and not self._stopping:
            self.last_gap = 0  # what was captured before the loss has been read: now retry
            return self._handle_loss(timeout)
        pending, self._pending_gap = self._pending_gap, 0
        if self._resampler is None:
            chunk = super().read(timeout, min_samples)
            self.last_gap += pending
            return chunk
        raw_block = max(1, int((min_samples or self._block) * self.stream_rate / SAMPLE_RATE))
        self.buffer.wait(raw_block, timeout)
        raw = self.buffer.read()
        if self._take_gap(self.stream_rate):
            self._resampler = MonoResampler(self.stream_rate, dtype="int16")  # no filter state across a gap
        self.last_gap += pending
        self._log_overruns()
        if raw.size == 0 and self.buffer.closed:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None
        return self._resampler.process(raw)

    @property
    def lost(self) -> bool:
        """True while the input is lost and being retried."""
        return self._lost.is_set()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        self._generation += 1  # its finished-callback is ours, not a loss
        try:
            stream.abort()
            stream.close()
        except Exception as exc:  # closing a broken stream must not raise
            log.debug("closing input stream: %s", exc)

    def stop(self) -> None:
        self._stopping = True
        self._close_stream()
        self.buffer.close()

    @property
    def dropped_samples(self) -> int:
        """Dropped samples, in 16 kHz samples whatever the device rate."""
        rate = self.stream_rate or SAMPLE_RATE
        return int(self.buffer.dropped_samples * SAMPLE_RATE / rate)


def open_source(
    input: str | None = None,
    device: str | int | None = None,
    *,
    realtime: bool = True,
    block_s: float = 0.05,
    buffer_s: float = 5.0,
) -> AudioSource:
    """The source a CLI/config asks for: ``input`` '-' = stdin, a path = file, else a microphone."""
    if input == "-":
        return StdinSource(block_s=block_s, buffer_s=buffer_s)
    if input:
        return FileSource(input, realtime=realtime, block_s=block_s, buffer_s=max(buffer_s, 1.0))
    return MicrophoneSource(device, block_s=block_s, buffer_s=buffer_s)
