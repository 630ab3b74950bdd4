"""Saved audio of what fired the detector (and of what nearly did): WAV + JSON sidecar per event.

Why: a user who cannot hear what woke the daemon cannot tell a miss from a TV. Each
detection (``listen --save-clips DIR``) becomes ``DIR/<UTC time>_<word>_detection.wav``, 16 kHz
mono, from 1.5 s before the firing frame to 0.5 s after it, and a ``.json`` sidecar with the
score, times, the model file and its SHA-256 and the detector settings. Near misses (smoothed
score peaks at or above a threshold that did not fire) go to ``DIR/near-miss/``. ``enroll``
writes the same layout, so later training can read either as real recordings.

The audio path only copies samples into a ring (:class:`AudioHistory`) and, once the 0.5 s after
an event has arrived, hands the clip to :class:`ClipWriter`: a bounded queue and its own thread.
A full queue drops the clip and counts it; a failing disk logs one warning per outage; neither
ever makes detection wait. The directory is capped (``max_clips``, ``max_megabytes``; oldest
removed first); files are 0600 in 0700 directories: this is audio of someone's home.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from wakeword.errors import ConfigError

if TYPE_CHECKING:
    from wakeword.config import ClipSettings
    from wakeword.detector import Detection
    from wakeword.engine import Detector

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
BEFORE_S = 1.5  # audio kept before the firing frame's end
AFTER_S = 0.5  # ... and after it
NEAR_MISS_DIR = "near-miss"
#: Recent audio kept for clips: the longest a near-miss peak can trail the end of its run and still be cut.
HISTORY_S = 12.0
QUEUE_SIZE = 32  # clips waiting for the writer thread (2 s of audio each, 64 KB)
WARN_EVERY_S = 60.0


@dataclass
class Clip:
    """One event's audio and what the sidecar says about it."""

    kind: str  # "detection", "near-miss" or "enrollment"
    wake_word: str
    samples: np.ndarray  # int16, 16 kHz mono
    sidecar: dict[str, Any]
    wall_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    label: str = ""  # added to the file name (enroll: the take number)


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a file (the model a clip was judged by), or None if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _safe(word: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", word).strip("-") or "word"


def _private_write(path: Path, write) -> None:
    """Create ``path`` 0600 via a hidden temporary name (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _private_dir(path: Path) -> None:
    """Create ``path`` 0700; an existing directory is left as it is but a loose one is warned about."""
    try:
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)  # mkdir's mode passes through the umask
        return
    except FileExistsError:
        if not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a directory") from None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "%s is readable by other users (mode %o); saved clips are audio of your home: chmod 700 it",
            path,
            mode,
        )


class ClipStore:
    """A clip directory: private files, names that sort by time, and a cap on count and size."""

    def __init__(self, root: Path, *, max_clips: int | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_clips = max_clips
        self.max_bytes = max_bytes
        self._index: list[tuple[str, Path, int]] = []  # (sort key, wav path, bytes incl. sidecar)
        self._bytes = 0
        self.removed = 0

    def prepare(self) -> None:
        """Create the directories and prove a file can be written; raises OSError with the reason."""
        _private_dir(self.root)
        _private_dir(self.root / NEAR_MISS_DIR)
        probe = self.root / f".write-test-{os.getpid()}"
        _private_write(probe, lambda handle: handle.write(b"ok"))
        probe.unlink()
        self._scan()

    def _scan(self) -> None:
        """Clips already there (an earlier run) count towards the cap."""
        self._index = []
        for folder in (self.root, self.root / NEAR_MISS_DIR):
            for wav in folder.glob("*.wav"):
                self._index.append((wav.name, wav, self._size(wav)))
        self._index.sort()
        self._bytes = sum(size for _, _, size in self._index)

    @staticmethod
    def _size(wav: Path) -> int:
        total = 0
        for path in (wav, wav.with_suffix(".json")):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def _name(self, clip: Clip, folder: Path) -> Path:
        stamp = clip.wall_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
        base = f"{stamp}_{_safe(clip.wake_word)}_{clip.kind}" + (
            f"-{_safe(clip.label)}" if clip.label else ""
        )
        path = folder / f"{base}.wav"
        n = 1
        while path.exists():
            n += 1
            path = folder / f"{base}-{n}.wav"
        return path

    def save(self, clip: Clip) -> Path:
        """Write the WAV and its sidecar (0600), then enforce the cap; returns the WAV's path."""
        folder = self.root / NEAR_MISS_DIR if clip.kind == "near-miss" else self.root
        wav = self._name(clip, folder)
        sidecar = dict(clip.sidecar, audio=wav.name, wall_time=clip.wall_time.astimezone().isoformat())
        _private_write(
            wav, lambda handle: sf.write(handle, clip.samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        )
        text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"
        try:
            _private_write(wav.with_suffix(".json"), lambda handle: handle.write(text.encode()))
        except BaseException:
            with contextlib.suppress(OSError):
                wav.unlink()
            raise
        size = self._size(wav)
        self._index.append((wav.name, wav, size))
        if len(self._index) > 1 and self._index[-2][0] > wav.name:  # clock went back: keep it sorted
            self._index.sort()
        self._bytes += size
        self._enforce_cap()
        return wav

    def _enforce_cap(self) -> None:
        while self._index and (
            (self.max_clips is not None and len(self._index) > self.max_clips)
            or (self.max_bytes is not None and self._bytes > self.max_bytes and len(self._index) > 1)
        ):
            _, wav, size = self._index.pop(0)
            for path in (wav, wav.with_suffix(".json")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            self._bytes -= size
            self.removed += 1

    @property
    def count(self) -> int:
        return len(self._index)


def open_store(settings: ClipSettings) -> ClipStore:
    """The store a config asks for, ready to write; an unusable directory is one ConfigError line."""
    store = ClipStore(
        settings.dir, max_clips=settings.max_clips, max_bytes=int(settings.max_megabytes * 1024 * 1024)
    )
    try:
        store.prepare()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"audio.save_clips: cannot write clips to {settings.dir}: {reason}") from exc
    return store


class ClipWriter:
    """Writes clips on its own thread from a bounded queue; :meth:`submit` never blocks."""

    def __init__(self, store: ClipStore, *, queue_size: int = QUEUE_SIZE, warn_every_s: float = WARN_EVERY_S):
        self.store = store
        self.warn_every_s = warn_every_s
        self.saved = 0
        self.dropped = 0  # queue full
        self.failed = 0  # the disk refused
        self._queue: queue.Queue[Clip | None] = queue.Queue(maxsize=queue_size)
        self._warned_full: float | None = None
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="wakeword-clips", daemon=True)
        self._thread.start()

    def submit(self, clip: Clip) -> bool:
        try:
            self._queue.put_nowait(clip)
            return True
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if self._warned_full is None or now - self._warned_full >= self.warn_every_s:
                self._warned_full = now
                log.warning(
                    "clip writer is behind (slow disk?): dropped %d clip(s) so far; detection carries on",
                    self.dropped,
                )
            return False

    def _run(self) -> None:
        while True:
            clip = self._queue.get()
            if clip is None:
                return
            try:
                path = self.store.save(clip)
            except (OSError, ValueError, RuntimeError) as exc:  # soundfile raises RuntimeError too
                self.failed += 1
                if not self._failing:
                    self._failing = True
                    reason = getattr(exc, "strerror", None) or str(exc)
                    log.warning(
                        "cannot save clips to %s (%s); listening continues, clips are lost until it works",
                        self.store.root,
                        reason,
                    )
                continue
            self.saved += 1
            if self._failing:
                self._failing = False
                log.info("saving clips to %s again (%d lost meanwhile)", self.store.root, self.failed)
            log.debug("saved %s", path)

    def close(self, timeout_s: float = 2.0) -> None:
        """Write what is queued, waiting at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        left = self._queue.qsize() if self._thread.is_alive() else 0
        if left or self.dropped or self.failed:
            log.info(
                "clips: %d saved, %d dropped (queue full), %d failed to write, %d not written at exit",
                self.saved,
                self.dropped,
                self.failed,
                left,
            )


class AudioHistory:
    """The last ``seconds`` of int16 audio, addressed by absolute sample position on the stream clock."""

    def __init__(self, seconds: float = HISTORY_S, rate: int = SAMPLE_RATE) -> None:
        self._buf = np.zeros(int(seconds * rate), dtype=np.int16)
        self.end = 0  # absolute position just after the newest sample
        self.start = 0  # oldest absolute position still held

    def append(self, chunk: np.ndarray, position: int) -> None:
        """``chunk`` starts at ``position``; a jump (dropped audio) starts the history over."""
        if position != self.end:
            self.start = self.end = position
        n = chunk.size
        size = self._buf.size
        if n >= size:
            self._buf[:] = chunk[-size:]
            self.end = position + n
            self.start = self.end - size
            return
        at = self.end % size
        first = min(n, size - at)
        self._buf[at : at + first] = chunk[:first]
        self._buf[: n - first] = chunk[first:]
        self.end += n
        self.start = max(self.start, self.end - size)

    def get(self, start: int, stop: int) -> tuple[np.ndarray, int]:
        """Samples in [start, stop) that are still held, and the position of the first one."""
        start, stop = max(start, self.start), min(stop, self.end)
        if stop <= start:
            return np.zeros(0, dtype=np.int16), start
        size = self._buf.size
        idx = np.arange(start, stop) % size
        return self._buf[idx].copy(), start


@dataclass
class _Pending:
    kind: str
    wake_word: str
    score: float
    time_s: float  # stream time of the firing frame's end (or the near miss's peak frame)
    frame: int
    wall_time: datetime


@dataclass
class _Run:
    """A stretch of frames with smoothed score at or above the lower of the two thresholds."""

    peak: float = 0.0
    peak_frame: int = 0
    fired: bool = False


class NearMissTracker:
    """Score peaks at or above ``threshold`` that did not fire: one per peak, refractory as for detections.

    Fed every frame's smoothed score in order with the frames that fired; a peak is
    reported when its run ends (the score falls below both thresholds) or at the end of input.
    """

    def __init__(self, threshold: float, refractory_frames: int, fire_threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.refractory_frames = refractory_frames
        # A run lasts while the score stays at or above either threshold, so with T above the
        # detector's threshold a word that fires a little later is still one (fired) run.
        self._floor = min(threshold, fire_threshold)
        self._run: _Run | None = None
        self._last_event: int | None = None

    def feed(self, first_frame: int, scores: Sequence[float], fired: set[int]) -> list[tuple[int, float]]:
        """Returns the (peak frame, peak score) of each near miss that ended in these frames."""
        found: list[tuple[int, float]] = []
        for i, score in enumerate(scores):
            frame = first_frame + i
            if frame in fired:
                self._last_event = frame
                if self._run is not None:
                    self._run.fired = True
            if score >= self._floor:
                run = self._run
                if run is None:
                    run = self._run = _Run(score, frame, frame in fired)
                elif score > run.peak:
                    run.peak, run.peak_frame = score, frame
            elif self._run is not None:
                found.extend(self._end())
        return found

    def finish(self) -> list[tuple[int, float]]:
        return self._end() if self._run is not None else []

    def _end(self) -> list[tuple[int, float]]:
        run, self._run = self._run, None
        assert run is not None
        if run.fired or run.peak < self.threshold:
            return []
        if self._last_event is not None and run.peak_frame - self._last_event < self.refractory_frames:
            return []
        self._last_event = run.peak_frame
        return [(run.peak_frame, run.peak)]


class ClipRecorder:
    """The listen loop's tap for ``--save-clips``: keeps recent audio, cuts and queues each event's clip.

    Runs on the processing thread and does only array copies there; files are written by
    :class:`ClipWriter`. See :class:`wakeword.listen.StreamTap` for when each method is called.
    """

    def __init__(self, settings: ClipSettings, store: ClipStore | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings)
        self.writer = ClipWriter(self.store)
        self.history = AudioHistory()
        self._pending: list[_Pending] = []
        self._detector: Detector | None = None
        self._offset_s = 0.0
        self._trackers: dict[str, NearMissTracker] = {}
        self._models: dict[str, dict[str, Any]] = {}
        self._hashes: dict[tuple[str, int, int], str | None] = {}

    # -- StreamTap ---------------------------------------------------------------------------
    def attach(self, detector: Detector, offset_s: float) -> None:
        """A new or restarted detector whose frame 0 starts at stream time ``offset_s``."""
        self._finish_trackers()
        self._detector, self._offset_s = detector, offset_s
        threshold = self.settings.near_miss_threshold
        self._trackers = (
            {}
            if threshold is None
            else {
                word: NearMissTracker(threshold, debouncer.refractory_frames, debouncer.settings.threshold)
                for word, debouncer in detector.debouncers.items()
            }
        )
        self._models = {model.name: self._describe(model.path) for model in detector.models}

    @property
    def wants_scores(self) -> bool:
        return bool(self._trackers)

    def step(
        self,
        chunk: np.ndarray,
        position: int,
        detections: Sequence[Detection],
        scores: dict[str, tuple[int, list[float]]],
    ) -> None:
        """``chunk`` (at absolute sample ``position``) has been processed into these detections and scores."""
        if position != self.history.end and self._pending:
            self._cut(final=True)  # audio was dropped: cut what is pending before the history restarts
        self.history.append(chunk, position)
        now = datetime.now(UTC)
        for d in detections:
            self._pending.append(_Pending("detection", d.wake_word, d.score, d.time_s, d.frame, now))
        if self._trackers:
            fired: dict[str, set[int]] = {}
            for d in detections:
                fired.setdefault(d.wake_word, set()).add(d.frame)
            for word, (first, values) in scores.items():
                tracker = self._trackers.get(word)
                if tracker is not None:
                    self._add_near_misses(word, tracker.feed(first, values, fired.get(word, set())), now)
        self._cut(final=False)

    def finish(self) -> None:
        """End of input: cut what is pending with the audio there is."""
        self._finish_trackers()
        self._cut(final=True)

    def close(self) -> None:
        self.finish()
        self.writer.close()

    # -- internals ---------------------------------------------------------------------------
    def _finish_trackers(self) -> None:
        now = datetime.now(UTC)
        for word, tracker in self._trackers.items():
            self._add_near_misses(word, tracker.finish(), now)

    def _add_near_misses(self, word: str, peaks: list[tuple[int, float]], now: datetime) -> None:
        if not peaks or self._detector is None:
            return
        debouncer = self._detector.debouncers[word]
        for frame, score in peaks:
            time_s = self._offset_s + debouncer.frame_time(frame)
            # The peak came before now by how far the stream has moved on since.
            lag = max(0.0, self.history.end / SAMPLE_RATE - time_s)
            wall = datetime.fromtimestamp(now.timestamp() - lag, UTC)
            self._pending.append(_Pending("near-miss", word, score, time_s, frame, wall))

    def _cut(self, final: bool) -> None:
        if not self._pending:
            return
        keep: list[_Pending] = []
        for event in self._pending:
            stop = int(round((event.time_s + AFTER_S) * SAMPLE_RATE))
            if stop > self.history.end and not final:
                keep.append(event)
                continue
            start = int(round((event.time_s - BEFORE_S) * SAMPLE_RATE))
            samples, first = self.history.get(start, stop)
            if samples.size == 0:
                log.debug("no audio left for the %s at %.2f s", event.kind, event.time_s)
                continue
            self.writer.submit(self._clip(event, samples, first))
        self._pending = keep

    def _clip(self, event: _Pending, samples: np.ndarray, first: int) -> Clip:
        clip_start_s = first / SAMPLE_RATE
        settings = self._detector.debouncers[event.wake_word].settings if self._detector else None
        sidecar: dict[str, Any] = {
            "kind": event.kind,
            "wake_word": event.wake_word,
            "score": round(float(event.score), 4),
            "stream_time_s": round(event.time_s, 3),
            "frame": event.frame,
            "clip_start_s": round(clip_start_s, 3),
            "event_offset_s": round(event.time_s - clip_start_s, 3),
            "duration_s": round(samples.size / SAMPLE_RATE, 3),
            "sample_rate": SAMPLE_RATE,
            "model": self._models.get(event.wake_word),
            "detector": asdict(settings) if settings is not None else None,
        }
        if event.kind == "near-miss":
            sidecar["near_miss_threshold"] = self.settings.near_miss_threshold
        return Clip(event.kind, event.wake_word, samples, sidecar, event.wall_time)

    def _describe(self, path: Path) -> dict[str, Any]:
        """The model file and its SHA-256 (hashed once per file version, 1-2 ms for the shipped model)."""
        try:
            stat = Path(path).stat()
            key = (str(path), stat.st_size, stat.st_mtime_ns)
        except OSError:
            key = (str(path), -1, -1)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(Path(path))
        return {"path": str(Path(path).resolve()), "sha256": self._hashes[key]}
