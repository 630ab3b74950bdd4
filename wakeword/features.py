"""Mel features (log or PCEN compressed), computed incrementally.

This is the one implementation of the front end. The daemon streams chunks of
any size through :class:`StreamingFeatures`; training computes whole clips with
:func:`compute_features`, which simply feeds the whole clip through the same
streaming object, so training and serving cannot drift apart.

Only numpy is needed: the mel filterbank is built here, so the daemon never
imports librosa.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

#: Bump when the arithmetic below changes; models record the version they were
#: trained with and loading refuses a mismatch.
FEATURE_VERSION = 1


@dataclass(frozen=True)
class FeatureConfig:
    """Front-end parameters. Travels with every model (ONNX metadata)."""

    sample_rate: int = 16000
    window_samples: int = 400  # 25 ms
    hop_samples: int = 160  # 10 ms
    n_fft: int = 512
    n_mels: int = 40
    fmin_hz: float = 60.0
    fmax_hz: float = 7600.0
    log_floor: float = 1e-6
    #: "log": log mel energies. "pcen": per-channel energy normalisation (Wang et al. 2017), which
    #: divides each band by a causal running average of itself before compressing, so a steady
    #: background or a gain change moves the features much less than it moves log-mels.
    compression: str = "log"
    pcen_time_constant_s: float = 0.4
    pcen_gain: float = 0.98
    pcen_bias: float = 2.0
    pcen_power: float = 0.5
    pcen_eps: float = 1e-9
    version: int = FEATURE_VERSION

    def __post_init__(self) -> None:
        if self.window_samples > self.n_fft:
            raise ValueError("window_samples must not exceed n_fft")
        if not 0 < self.hop_samples <= self.window_samples:
            raise ValueError("hop_samples must be in (0, window_samples]")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate / 2:
            raise ValueError("need 0 <= fmin_hz < fmax_hz <= sample_rate / 2")
        if self.compression not in ("log", "pcen"):
            raise ValueError(f"compression must be 'log' or 'pcen', got {self.compression!r}")
        if self.pcen_time_constant_s <= 0 or self.pcen_eps <= 0 or not 0 < self.pcen_power <= 1:
            raise ValueError("need pcen_time_constant_s > 0, pcen_eps > 0 and 0 < pcen_power <= 1")

    @property
    def pcen_smoothing(self) -> float:
        """Weight of the newest frame in the running average (one-pole low-pass)."""
        return float(1.0 - np.exp(-1.0 / (self.pcen_time_constant_s * self.frames_per_second)))

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_samples

    @property
    def dim(self) -> int:
        """Width of one frame (the front-end contract, see wakeword.frontend)."""
        return self.n_mels

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown feature parameters: {sorted(unknown)}")
        return cls(**data)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """Triangular HTK-style mel filters, shape (n_fft // 2 + 1, n_mels), float32."""
    n_bins = config.n_fft // 2 + 1
    bin_hz = np.linspace(0.0, config.sample_rate / 2, n_bins)
    mel_edges = np.linspace(
        _hz_to_mel(np.array(config.fmin_hz)), _hz_to_mel(np.array(config.fmax_hz)), config.n_mels + 2
    )
    hz_edges = _mel_to_hz(mel_edges)
    lower, centre, upper = hz_edges[:-2, None], hz_edges[1:-1, None], hz_edges[2:, None]
    rising = (bin_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bin_hz[None, :]) / (upper - centre)
    filters = np.clip(np.minimum(rising, falling), 0.0, None)
    filters /= np.maximum(filters.sum(axis=1, keepdims=True), 1e-12)  # equal area
    return np.ascontiguousarray(filters.T.astype(np.float32))


@lru_cache(maxsize=8)
def _window(config: FeatureConfig) -> np.ndarray:
    n = np.arange(config.window_samples)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / config.window_samples)).astype(np.float32)


def to_float32(samples: np.ndarray) -> np.ndarray:
    """Samples as float32 in [-1, 1]; int16 is scaled by 1/32768, floats pass through."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    raise TypeError(f"expected int16 or float samples, got {samples.dtype}")


def frame_count(n_samples: int, config: FeatureConfig) -> int:
    """Number of complete frames in a clip of n_samples (matches compute_features)."""
    if n_samples < config.window_samples:
        return 0
    return 1 + (n_samples - config.window_samples) // config.hop_samples


class StreamingFeatures:
    """Turns audio chunks of any size into feature frames, keeping the leftover.

    Frame ``t`` covers samples ``[t * hop, t * hop + window)`` of the stream, so
    the frames produced do not depend on how the stream was chunked. With PCEN the
    running average is carried between calls too, frame by frame, for the same reason.
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self._filters = mel_filterbank(self.config)
        self._window = _window(self.config)
        self._pending = np.zeros(0, dtype=np.float32)
        self._smoothed: np.ndarray | None = None  # PCEN running average, starts at the first frame

    def reset(self) -> None:
        """Forget buffered samples (start of a new stream, or after a gap)."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._smoothed = None

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Append samples (mono int16 or float) and return the new frames, (n, n_mels)."""
        cfg = self.config
        chunk = to_float32(samples).reshape(-1)
        buffer = np.concatenate([self._pending, chunk]) if self._pending.size else chunk
        n_frames = frame_count(buffer.size, cfg)
        if n_frames == 0:
            self._pending = buffer.copy()
            return np.zeros((0, cfg.n_mels), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(buffer, cfg.window_samples)[:: cfg.hop_samples][
            :n_frames
        ]
        spectrum = np.fft.rfft(frames * self._window, n=cfg.n_fft, axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        mel = power @ self._filters
        self._pending = buffer[n_frames * cfg.hop_samples :].copy()
        if cfg.compression == "pcen":
            return self._pcen(mel)
        return np.log(mel + np.float32(cfg.log_floor)).astype(np.float32)

    def _pcen(self, mel: np.ndarray) -> np.ndarray:
        """PCEN with fixed parameters. The running average is updated one frame at a time, so any
        chunking of the stream gives the same frames (up to the FFT's float rounding)."""
        cfg = self.config
        weight = np.float32(cfg.pcen_smoothing)
        smoothed = np.empty_like(mel)
        state = mel[0] if self._smoothed is None else self._smoothed
        for t in range(mel.shape[0]):
            state = (np.float32(1.0) - weight) * state + weight * mel[t]
            smoothed[t] = state
        self._smoothed = state
        normalised = mel / (np.float32(cfg.pcen_eps) + smoothed) ** np.float32(cfg.pcen_gain)
        bias = np.float32(cfg.pcen_bias)
        power = np.float32(cfg.pcen_power)
        return ((normalised + bias) ** power - bias**power).astype(np.float32)


def compute_features(samples: np.ndarray, config: FeatureConfig | None = None) -> np.ndarray:
    """Frames of a whole clip: exactly what streaming the clip would produce."""
    return StreamingFeatures(config).process(samples)
