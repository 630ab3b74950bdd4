"""The pipeline: audio samples in, detections out.

Every consumer (``wakeword listen``, ``wakeword detect``, the evaluation in
``training/``, the Wyoming server) runs audio through this one class, so a
model behaves the same live, on a file, and in its published metrics. Each
:class:`Detector` is one stream's state (features leftover, hidden states,
debouncers); use one per microphone or client and no locks are needed.

Frames are buffered and each model is run on exactly ``frames_per_step``
frames per call (the remainder only at :meth:`Detector.flush`). That keeps the
per-call overhead of onnxruntime low and makes the model calls themselves
independent of how the audio was chunked, so pushing a file in 20 ms chunks or
in one go gives the same detections.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wakeword import frontend
from wakeword.detector import Debouncer, Detection
from wakeword.errors import AudioError, ModelError
from wakeword.frontend import FrontEnd, FrontEndConfig
from wakeword.metadata import DetectorSettings
from wakeword.model import WakeWordModel, default_model_path
from wakeword.state import RefreshingState, refresh_schedule

if TYPE_CHECKING:
    from wakeword.config import Config

log = logging.getLogger(__name__)

#: Offline helpers feed audio in pieces this long, which bounds feature memory for long files.
OFFLINE_CHUNK_S = 30.0


@dataclass
class _Stream:
    """Per-model streaming state."""

    model: WakeWordModel
    features: FrontEnd
    debouncer: Debouncer
    frames_per_step: int
    state: RefreshingState
    pending: list[np.ndarray] = field(default_factory=list)
    pending_frames: int = 0
    last_probability: float = 0.0

    def reset(self) -> None:
        self.state.reset()
        self.pending.clear()
        self.pending_frames = 0
        self.last_probability = 0.0
        self.debouncer.reset()

    def push(self, frames: np.ndarray, final: bool = False) -> list[Detection]:
        """Buffer frames; run every full step (and the remainder when ``final``)."""
        if frames.shape[0]:
            self.pending.append(frames)
            self.pending_frames += frames.shape[0]
        step = self.frames_per_step
        if self.pending_frames < step and not (final and self.pending_frames):
            return []
        buffered = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        n_run = self.pending_frames if final else self.pending_frames - self.pending_frames % step
        detections: list[Detection] = []
        for start in range(0, n_run, step):
            probs = self.state.run(buffered[start : min(start + step, n_run)])
            detections.extend(self.debouncer.process(probs))
            self.last_probability = float(probs[-1])
        rest = buffered[n_run:]
        self.pending = [rest] if rest.shape[0] else []
        self.pending_frames = rest.shape[0]
        return detections


def _as_mono(samples: np.ndarray) -> np.ndarray:
    """Validate one chunk of audio: 1-D (or one-column 2-D) int16 or float, finite."""
    if not isinstance(samples, np.ndarray):
        raise AudioError(f"audio must be a numpy array, got {type(samples).__name__}")
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 1:
        raise AudioError(f"audio must be mono: shape (n,) or (n, 1), got {samples.shape}")
    if samples.dtype == np.int16:
        return samples
    if not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(f"audio must be int16 or float samples, got {samples.dtype}")
    if not np.isfinite(samples).all():
        raise AudioError("audio contains NaN or infinite samples")
    return samples


class Detector:
    """Samples in, detections out, for one or more models on one audio stream.

    ``threshold`` overrides every model's threshold (after ``settings``);
    ``settings`` maps a wake word to the :class:`DetectorSettings` replacing that
    model's defaults; ``frames_per_step`` overrides each model's metadata value.
    """

    def __init__(
        self,
        models: Sequence[str | Path | WakeWordModel] | None = None,
        *,
        threshold: float | None = None,
        settings: Mapping[str, DetectorSettings] | None = None,
        frames_per_step: int | None = None,
    ) -> None:
        if models is None:
            models = [default_model_path()]
        if isinstance(models, (str, Path, WakeWordModel)):
            models = [models]
        loaded = [m if isinstance(m, WakeWordModel) else WakeWordModel.load(m) for m in models]
        if not loaded:
            raise ValueError("Detector needs at least one model")
        names = [m.name for m in loaded]
        for name in set(names):
            if names.count(name) > 1:
                paths = ", ".join(str(m.path) for m in loaded if m.name == name)
                raise ModelError(f"{paths}: more than one model detects wake word {name!r}")
        settings = dict(settings or {})
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise ValueError(f"settings given for unknown wake words {unknown}; models detect {names}")
        if frames_per_step is not None and frames_per_step < 1:
            raise ValueError(f"frames_per_step must be >= 1, got {frames_per_step}")
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1 (exclusive), got {threshold}")

        rates = {m.features.sample_rate for m in loaded}
        if len(rates) > 1:
            paths = ", ".join(str(m.path) for m in loaded)
            raise ModelError(f"{paths}: models expect different sample rates {sorted(rates)}")
        self.sample_rate: int = rates.pop()
        self.models: list[WakeWordModel] = loaded
        # Models with the same front end share one feature extractor: features are computed once.
        self._features: dict[FrontEndConfig, FrontEnd] = {}
        self._streams: list[_Stream] = []
        for model in loaded:
            cfg = model.features
            if cfg not in self._features:
                self._features[cfg] = frontend.streaming(cfg)
            extractor = self._features[cfg]
            chosen = settings.get(model.name, model.metadata.detector)
            if threshold is not None:
                chosen = replace(chosen, threshold=threshold)
            debouncer = Debouncer(
                model.name,
                chosen,
                frames_per_second=cfg.frames_per_second,
                hop_s=cfg.hop_samples / cfg.sample_rate,
                window_s=cfg.window_samples / cfg.sample_rate,
            )
            step = frames_per_step or model.metadata.frames_per_step
            state = RefreshingState(model, refresh_schedule(chosen, cfg.frames_per_second))
            self._streams.append(_Stream(model, extractor, debouncer, step, state))

    @classmethod
    def from_config(cls, config: Config, *, frames_per_step: int | None = None) -> Detector:
        """Load the config's models, each with its defaults overlaid by the config's per-model keys."""
        models = [WakeWordModel.load(entry.path) for entry in config.models]
        settings = {
            model.name: entry.detector_settings(model.metadata.detector)
            for model, entry in zip(models, config.models, strict=True)
        }
        return cls(models, settings=settings, frames_per_step=frames_per_step)

    @property
    def wake_words(self) -> list[str]:
        return [s.model.name for s in self._streams]

    @property
    def settings(self) -> dict[str, DetectorSettings]:
        """The detector settings in effect per wake word."""
        return {s.model.name: s.debouncer.settings for s in self._streams}

    @property
    def debouncers(self) -> dict[str, Debouncer]:
        """Each wake word's debouncer (settings, frame times, per-frame score sink), for clips and meters."""
        return {s.model.name: s.debouncer for s in self._streams}

    def runs_like(self, other: Detector) -> bool:
        """Same model files (by content), settings and steps, in the same order: the two would give
        the same detections on the same stream, so a reload may keep the running one and its state."""

        def identity(detector: Detector) -> list[tuple]:
            return [(s.model.digest, s.debouncer.settings, s.frames_per_step) for s in detector._streams]

        return all(s.model.digest for s in self._streams) and identity(self) == identity(other)

    @property
    def feature_streams(self) -> int:
        """How many distinct front ends run (models with the same front-end config share one)."""
        return len(self._features)

    def process(self, samples: np.ndarray) -> list[Detection]:
        """Push 16 kHz mono samples (int16, or float in [-1, 1]; any length); return new detections."""
        samples = _as_mono(samples)
        frames = {cfg: extractor.process(samples) for cfg, extractor in self._features.items()}
        return self._push(frames, final=False)

    def flush(self) -> list[Detection]:
        """Run the frames still buffered below a full step (end of a file or stream)."""
        empty = {cfg: np.zeros((0, cfg.dim), dtype=np.float32) for cfg in self._features}
        return self._push(empty, final=True)

    def _push(self, frames: Mapping[FrontEndConfig, np.ndarray], final: bool) -> list[Detection]:
        detections: list[Detection] = []
        for stream in self._streams:
            detections.extend(stream.push(frames[stream.model.features], final=final))
        detections.sort(key=lambda d: (d.time_s, d.wake_word))
        return detections

    def reset(self) -> None:
        """Start a new stream: clear leftover samples, hidden states, buffered frames and debouncers."""
        for extractor in self._features.values():
            extractor.reset()
        for stream in self._streams:
            stream.reset()

    def scores(self) -> dict[str, float]:
        """Latest raw per-frame probability per wake word (debugging, ``-v``)."""
        return {s.model.name: s.last_probability for s in self._streams}

    def smoothed_scores(self) -> dict[str, float]:
        """Latest smoothed score per wake word (what the threshold is compared with)."""
        return {s.model.name: s.debouncer.last_score for s in self._streams}


@dataclass(frozen=True)
class Restart:
    """Where a live detector started again (``listen`` after dropped audio or a reload).

    ``position``: the sample (stream clock) that its frame 0 begins at; ``unheard``: samples just
    before it that no detector heard (audio dropped). Replaying a ``--dump-audio`` recording with
    its restarts reproduces the live detections exactly; without them, the replay's detector
    would carry features and state across the hole and hear the zeros that stand in for it.
    """

    position: int
    unheard: int = 0


def detect_samples(
    samples: np.ndarray,
    detector: Detector,
    chunk_s: float = OFFLINE_CHUNK_S,
    restarts: Sequence[Restart] = (),
) -> list[Detection]:
    """Offline: reset, stream a whole clip through ``detector`` in big chunks, flush.

    Same code path as live streaming, hence the same detections; the chunking only
    bounds memory for long recordings.
    """
    samples = _as_mono(samples)
    step = max(1, int(chunk_s * detector.sample_rate))
    chunks = (samples[start : start + step] for start in range(0, samples.shape[0], step))
    return detect_chunks(chunks, detector, restarts)


def detect_chunks(
    chunks: Iterable[np.ndarray], detector: Detector, restarts: Sequence[Restart] = ()
) -> list[Detection]:
    """Offline: reset, push every chunk, flush (for sources that yield chunks).

    At each of ``restarts`` the detector skips the unheard samples and starts again, as the live
    loop did; detection times stay on the recording's clock (frames count from the restart).
    """
    detector.reset()
    pending = sorted(restarts, key=lambda r: r.position)
    rate = detector.sample_rate
    offset = 0  # sample the current detector started at
    position = 0  # recording sample of the current chunk's start
    detections: list[Detection] = []

    def on_clock(found: list[Detection]) -> list[Detection]:
        return [replace(d, time_s=d.time_s + offset / rate) for d in found] if offset else found

    for chunk in chunks:
        i, n = 0, len(chunk)  # process() validates each piece; no second pass over the samples here
        while i < n:
            here = position + i
            nxt = pending[0] if pending else None
            if nxt is not None and here >= nxt.position:
                pending.pop(0)
                detector.reset()
                offset = nxt.position
                continue
            if nxt is not None and here >= nxt.position - nxt.unheard:
                i = min(n, nxt.position - position)  # zeros standing in for dropped audio
                continue
            j = n if nxt is None else min(n, nxt.position - nxt.unheard - position)
            detections.extend(on_clock(detector.process(chunk[i:j])))
            i = j
        position += n
    if any(r.position - r.unheard <= position for r in pending):
        detector.reset()  # the recording ends in a hole (or at a restart): nothing left to flush
    detections.extend(on_clock(detector.flush()))
    return detections


def detect_file(path: str | Path, detector: Detector) -> list[Detection]:
    """Offline detection on an audio file (any format/rate soundfile reads): what ``wakeword detect`` runs.

    A ``listen --dump-audio`` recording is replayed with the restarts noted beside it.
    """
    from wakeword.audio import read_audio_file  # the I/O modules; imported here to keep engine light
    from wakeword.dump import read_restarts

    return detect_samples(read_audio_file(Path(path)), detector, restarts=read_restarts(path))
