"""Waveform augmentation: make clean TTS sound like a room, a microphone and a life.

Everything here is a pure function of (audio, numpy Generator), so a dataset built
with a seed is the same every time. No files, no downloads: impulse responses are
simulated (exponentially decaying noise with a direct path and a few early
reflections), which is close enough to a real room for a log-mel front end and
costs one FFT convolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soxr
import torch
from scipy import signal

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges for every augmentation; probabilities are per clip."""

    reverb_p: float = 0.6
    rt60_s: tuple[float, float] = (0.15, 0.9)
    direct_to_reverb_db: tuple[float, float] = (-3.0, 12.0)
    snr_db: tuple[float, float] = (0.0, 20.0)  # foreground speech over background
    clean_p: float = 0.15  # share of clips with only a faint noise floor as background
    noise_floor_dbfs: tuple[float, float] = (-75.0, -50.0)  # microphone self-noise, always present
    peak_dbfs: tuple[float, float] = (-40.0, -1.0)  # whisper-quiet .. near clipping
    clip_p: float = 0.03  # share pushed past full scale and hard-clipped
    colour_p: float = 0.7
    speed_p: float = 0.5
    speed: tuple[float, float] = (0.88, 1.12)  # resampling: tempo and formants together (a crude VTLP)
    # A narrow-band chain (8 kHz capture, a phone or VoIP codec) after the noise floor: upper bands empty.
    # 0 = off in every recipe: at 0.3 it cost real people (bench/results/band-limit-rule.md).
    band_limit_p: float = 0.0
    band_limit_hz: tuple[float, float] = (2500.0, 5000.0)  # cutoff, drawn uniformly


def quantise_int16(x: np.ndarray) -> np.ndarray:
    """What a 16-bit microphone would deliver: clipped to full scale, 1/32768 steps."""
    return (np.clip(np.round(x * 32767.0), -32768, 32767) / 32768.0).astype(np.float32)


def db_to_amplitude(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def active_rms(x: np.ndarray, frame: int = 400) -> float:
    """RMS over the louder half of frames: speech level without its pauses (for SNR)."""
    n = len(x) // frame
    if n < 2:
        return rms(x)
    energy = np.mean(np.square(x[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    loud = np.sort(energy)[n // 2 :]
    return float(np.sqrt(np.mean(loud) + 1e-12))


def simulated_rir(rng: np.random.Generator, rt60_s: float, drr_db: float) -> np.ndarray:
    """Room impulse response: direct path at t=0, sparse early reflections, decaying diffuse tail."""
    length = int(min(rt60_s, 1.2) * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.908 * t / rt60_s)  # -60 dB at rt60
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0  # diffuse field arrives after the direct sound
    for _ in range(rng.integers(3, 8)):  # early reflections (walls, desk) within 25 ms
        tail[rng.integers(int(0.002 * SAMPLE_RATE), int(0.025 * SAMPLE_RATE))] += rng.uniform(-0.8, 0.8)
    tail *= db_to_amplitude(-drr_db) / max(np.sqrt(np.sum(tail**2)), 1e-9)
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Full convolution (the tail rings on after the dry signal ends)."""
    return signal.fftconvolve(x, rir, mode="full").astype(np.float32)


@lru_cache(maxsize=512)
def _butter(cutoff_hz: int, kind: str) -> np.ndarray:
    return signal.butter(2, cutoff_hz, kind, fs=SAMPLE_RATE, output="sos")


def colour_filter(rng: np.random.Generator) -> np.ndarray:
    """A random cheap-microphone response: high-pass, low-pass and a resonance, as SOS."""
    sections = [_butter(int(rng.uniform(40.0, 350.0)) // 10 * 10, "highpass")]
    if rng.random() < 0.7:
        sections.append(_butter(int(rng.uniform(3000.0, 7800.0)) // 100 * 100, "lowpass"))
    centre, gain_db, q = rng.uniform(300.0, 5000.0), rng.uniform(-8.0, 8.0), rng.uniform(0.5, 3.0)
    sections.append(_peaking_sos(centre, gain_db, q))
    return np.concatenate(sections, axis=0)


def _peaking_sos(centre_hz: float, gain_db: float, q: float) -> np.ndarray:
    """RBJ cookbook peaking equaliser as one second-order section."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * centre_hz / SAMPLE_RATE
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def apply_colour(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    return signal.sosfilt(sos, x).astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch and formants move with it, like a shorter vocal tract)."""
    if abs(factor - 1.0) < 1e-3:
        return x
    return soxr.resample(x, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


def band_limit(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Through a chain sampled at twice ``cutoff_hz`` and back: nothing above the cutoff survives,
    noise floor included (a steep anti-alias filter, unlike the gentle low-pass of colour_filter)."""
    low_rate = 2.0 * cutoff_hz
    if low_rate >= SAMPLE_RATE:
        return x
    narrow = soxr.resample(x, SAMPLE_RATE, low_rate)
    back = soxr.resample(narrow, low_rate, SAMPLE_RATE).astype(np.float32)
    out = np.zeros_like(x)
    out[: min(len(x), len(back))] = back[: len(x)]
    return out


def coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS noise with a random spectral tilt (white .. nearly brown), by a one-pole filter."""
    white = rng.standard_normal(n).astype(np.float32)
    pole = rng.uniform(0.0, 0.97)
    noise = signal.lfilter([1.0], [1.0, -pole], white).astype(np.float32)
    return noise / max(rms(noise), 1e-9)


def scale_to_snr(foreground: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """Background scaled so that active foreground level / background level = snr_db."""
    gain = active_rms(foreground) / max(rms(background), 1e-9) / db_to_amplitude(snr_db)
    return (background * gain).astype(np.float32)


def finish(x: np.ndarray, rng: np.random.Generator, config: AugmentConfig, colour: bool = True) -> np.ndarray:
    """Microphone stage on the whole mix: colouring, gain, clipping, self-noise, band limit, 16-bit."""
    if colour and rng.random() < config.colour_p:
        x = apply_colour(x, colour_filter(rng))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    target = db_to_amplitude(rng.uniform(*config.peak_dbfs))
    if rng.random() < config.clip_p:
        target = db_to_amplitude(rng.uniform(0.0, 6.0))
    x = x * (target / peak) if peak > 1e-6 else x
    floor = db_to_amplitude(rng.uniform(*config.noise_floor_dbfs))
    x = x + floor * coloured_noise(rng, len(x))
    # Drawn only when on, so the default recipe's random stream (and its datasets) stay as they were.
    if config.band_limit_p > 0.0 and rng.random() < config.band_limit_p:
        x = band_limit(x, rng.uniform(*config.band_limit_hz))
    return quantise_int16(x)


def spec_augment(
    features: torch.Tensor,
    generator: torch.Generator,
    max_freq: int = 6,
    max_time: int = 12,
    p: float = 0.5,
) -> torch.Tensor:
    """SpecAugment-style masks on normalised features [B, T, F] (masked cells set to 0 = the mean)."""
    batch, frames, mels = features.shape
    out = features.clone()
    chosen = torch.rand(batch, generator=generator) < p
    for b in torch.nonzero(chosen).flatten().tolist():
        f_width = int(torch.randint(1, max_freq + 1, (1,), generator=generator))
        f_start = int(torch.randint(0, mels - f_width + 1, (1,), generator=generator))
        out[b, :, f_start : f_start + f_width] = 0.0
        t_width = int(torch.randint(1, max_time + 1, (1,), generator=generator))
        t_start = int(torch.randint(0, max(frames - t_width, 1), (1,), generator=generator))
        out[b, t_start : t_start + t_width, :] = 0.0
    return out
